-- wrk script: each request takes the next path of WRK_PATHS_FILE and the next key of
-- WRK_KEYS_FILE (one per line), so a run rotates through distinct queries or keys.
-- WRK_DELAY_MS, when set, makes each connection wait that long before each request,
-- which caps the offered rate at connections * 1000 / WRK_DELAY_MS requests per second.

local function read_lines(name)
  local lines = {}
  for line in io.lines(os.getenv(name)) do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  return lines
end

local paths = read_lines("WRK_PATHS_FILE")
local keys = read_lines("WRK_KEYS_FILE")
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
local counter = 0

function request()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  local key = keys[(counter % #keys) + 1]
  return wrk.format("GET", path, { ["X-Partner-API-Key"] = key })
end

if delay_ms then
  function delay()
    return delay_ms
  end
end

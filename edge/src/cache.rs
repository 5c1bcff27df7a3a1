//! A least-recently-used cache bounded by the total weight of its values (bytes, positions) as well as by count.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Thread-safe LRU cache that evicts until both the entry count and the summed weight fit.
pub(crate) struct WeightedLru<K: Hash + Eq, V: Clone> {
    inner: Mutex<Inner<K, V>>,
    max_weight: usize,
}

struct Inner<K: Hash + Eq, V> {
    entries: LruCache<K, (V, usize)>,
    weight: usize,
}

impl<K: Hash + Eq, V: Clone> WeightedLru<K, V> {
    /// Creates a cache of at most `max_entries` entries weighing at most `max_weight` together.
    pub(crate) fn new(max_entries: NonZeroUsize, max_weight: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: LruCache::new(max_entries),
                weight: 0,
            }),
            max_weight,
        }
    }

    /// Returns a clone of the value and marks it most recently used.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        inner.entries.get(key).map(|(value, _)| value.clone())
    }

    /// Stores a value; one heavier than the whole cache is not stored.
    pub(crate) fn insert(&self, key: K, value: V, weight: usize) {
        if weight > self.max_weight {
            return;
        }
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((_, old_weight)) = inner.entries.pop(&key) {
            inner.weight -= old_weight;
        }
        while inner.weight + weight > self.max_weight {
            match inner.entries.pop_lru() {
                Some((_, (_, evicted))) => inner.weight -= evicted,
                None => break,
            }
        }
        if let Some((_, (_, evicted))) = inner.entries.push(key, (value, weight)) {
            inner.weight -= evicted;
        }
        inner.weight += weight;
    }

    /// Returns the summed weight of the stored values.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> usize {
        self.inner.lock().unwrap().weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_until_weight_fits() {
        let cache = WeightedLru::new(NonZeroUsize::new(10).unwrap(), 10);
        cache.insert("a", 1, 4);
        cache.insert("b", 2, 4);
        assert_eq!(cache.get(&"a"), Some(1));

        cache.insert("c", 3, 4);

        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"c"), Some(3));
        assert_eq!(cache.weight(), 8);
    }

    #[test]
    fn count_bound_and_replacement_keep_weight_right() {
        let cache = WeightedLru::new(NonZeroUsize::new(2).unwrap(), 100);
        cache.insert("a", 1, 10);
        cache.insert("a", 2, 20);
        cache.insert("b", 3, 30);
        cache.insert("c", 4, 40);
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.weight(), 70);
        cache.insert("huge", 5, 101);
        assert_eq!(cache.get(&"huge"), None);
    }
}

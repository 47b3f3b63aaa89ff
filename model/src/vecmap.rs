//! [`VecMap`]: a map kept as one sorted vector, for the small maps every
//! allocation carries (per-task states and resources, placement metrics).
//!
//! `std`'s `BTreeMap` allocates a whole node (eleven slots) for its first
//! entry: about 1 KiB for a one-task allocation's `task_states`, and as
//! much again for its `resources.tasks`. The servers hold every allocation
//! in memory, so on a region with 10,000 allocations those nodes alone were
//! tens of MiB. A `VecMap` allocates exactly its entries, looks keys up by
//! binary search, and encodes (CBOR and JSON) exactly as a `BTreeMap` does:
//! a map in key order. Decoding sorts and, for a repeated key, keeps the
//! last value, as collecting into a `BTreeMap` would.
//!
//! Inserting is O(n); these maps hold a handful of entries.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;

use minicbor::decode::{Decode, Decoder};
use minicbor::encode::{Encode, Encoder, Write};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map in one sorted `Vec`; see the module documentation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K, V> VecMap<K, V> {
    /// An empty map; allocates nothing.
    pub const fn new() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            inner: self.entries.iter(),
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in key order, mutable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

impl<K: Ord, V> VecMap<K, V> {
    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value for `key`, mutable.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.find(key) {
            Ok(i) => Some(&mut self.entries[i].1),
            Err(_) => None,
        }
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// The slot for `key`, to read or fill in place.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        let at = self.find(&key);
        Entry { map: self, key, at }
    }

    /// Builds a map from entries in any order; for a repeated key the last
    /// value wins. O(n log n), whatever the input.
    fn from_unsorted(mut entries: Vec<(K, V)>) -> Self {
        // Stable: equal keys stay in input order, so keeping the last of a
        // run keeps the last value given.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        out.shrink_to_fit();
        VecMap { entries: out }
    }
}

/// A slot of a [`VecMap`], from [`VecMap::entry`].
#[derive(Debug)]
pub struct Entry<'a, K, V> {
    map: &'a mut VecMap<K, V>,
    key: K,
    at: Result<usize, usize>,
}

impl<'a, K, V> Entry<'a, K, V> {
    /// The value, inserting `make()` first if there is none.
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        let i = match self.at {
            Ok(i) => i,
            Err(i) => {
                self.map.entries.insert(i, (self.key, make()));
                i
            }
        };
        &mut self.map.entries[i].1
    }

    /// The value, inserting `value` first if there is none.
    pub fn or_insert(self, value: V) -> &'a mut V {
        self.or_insert_with(|| value)
    }

    /// The value, inserting the default first if there is none.
    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

/// Borrowing iterator of a [`VecMap`].
#[derive(Debug, Clone)]
pub struct Iter<'a, K, V> {
    inner: std::slice::Iter<'a, (K, V)>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|(k, v)| (k, v))
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        VecMap::from_unsorted(iter.into_iter().collect())
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for VecMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        VecMap::from_unsorted(Vec::from(entries))
    }
}

impl<K: Ord, V, Q> std::ops::Index<&Q> for VecMap<K, V>
where
    K: Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = V;

    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for this key in the VecMap")
    }
}

impl<C, K: Encode<C>, V: Encode<C>> Encode<C> for VecMap<K, V> {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.map(self.entries.len() as u64)?;
        for (k, v) in &self.entries {
            k.encode(e, ctx)?;
            v.encode(e, ctx)?;
        }
        Ok(())
    }
}

impl<'b, C, K: Decode<'b, C> + Ord, V: Decode<'b, C>> Decode<'b, C> for VecMap<K, V> {
    fn decode(d: &mut Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        let mut entries = Vec::new();
        for pair in d.map_iter_with::<C, K, V>(ctx)? {
            entries.push(pair?);
        }
        Ok(VecMap::from_unsorted(entries))
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = VecMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                // The size hint comes from the input: cap what it reserves.
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = access.next_entry()? {
                    entries.push(pair);
                }
                Ok(VecMap::from_unsorted(entries))
            }
        }

        d.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
impl<'a, K: arbitrary::Arbitrary<'a> + Ord, V: arbitrary::Arbitrary<'a>> arbitrary::Arbitrary<'a>
    for VecMap<K, V>
{
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(u.arbitrary_iter::<(K, V)>()?
            .collect::<arbitrary::Result<Vec<_>>>()?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn cbor<T: Encode<()>>(x: &T) -> Vec<u8> {
        minicbor::to_vec(x).unwrap()
    }

    #[test]
    fn it_keeps_keys_sorted_and_replaces_on_insert() {
        let mut m = VecMap::new();
        assert_eq!(m.insert("b", 2), None);
        assert_eq!(m.insert("a", 1), None);
        assert_eq!(m.insert("c", 3), None);
        assert_eq!(m.insert("b", 20), Some(2));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.get("b"), Some(&20));
        assert_eq!(m.remove("a"), Some(1));
        assert_eq!(m.remove("a"), None);
        assert!(!m.contains_key("a"));
        *m.entry("d").or_insert(0) += 4;
        *m.entry("d").or_insert(0) += 4;
        assert_eq!(m["d"], 8);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn it_encodes_exactly_as_a_btreemap_does() {
        let pairs = [
            ("zeta".to_owned(), 1u32),
            ("alpha".to_owned(), 2),
            ("mid".to_owned(), 3),
        ];
        let v: VecMap<String, u32> = pairs.iter().cloned().collect();
        let b: BTreeMap<String, u32> = pairs.iter().cloned().collect();
        assert_eq!(cbor(&v), cbor(&b));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let back: VecMap<String, u32> = minicbor::decode(&cbor(&b)).unwrap();
        assert_eq!(back, v);
        let back: VecMap<String, u32> =
            serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn decoding_a_repeated_key_keeps_the_last_value_as_a_btreemap_would() {
        let json = r#"{"b": 1, "a": 2, "b": 3}"#;
        let v: VecMap<String, u32> = serde_json::from_str(json).unwrap();
        let b: BTreeMap<String, u32> = serde_json::from_str(json).unwrap();
        assert_eq!(
            v.iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<BTreeMap<_, _>>(),
            b
        );
        assert_eq!(v.len(), 2);

        // The same in CBOR: {"b": 1, "a": 2, "b": 3}.
        let mut e = Encoder::new(Vec::new());
        e.map(3).unwrap();
        e.str("b").unwrap().u32(1).unwrap();
        e.str("a").unwrap().u32(2).unwrap();
        e.str("b").unwrap().u32(3).unwrap();
        let v: VecMap<String, u32> = minicbor::decode(&e.into_writer()).unwrap();
        assert_eq!(v.get("b"), Some(&3));
        assert_eq!(v.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_large_unsorted_input_decodes_in_n_log_n() {
        // 200,000 keys in reverse order: an insert-per-entry decode would
        // shift ~2e10 entries; this must be quick.
        let n = 200_000u32;
        let mut e = Encoder::new(Vec::new());
        e.map(u64::from(n)).unwrap();
        for i in (0..n).rev() {
            e.u32(i).unwrap().u32(i).unwrap();
        }
        let v: VecMap<u32, u32> = minicbor::decode(&e.into_writer()).unwrap();
        assert_eq!(v.len(), n as usize);
        assert!(v.keys().zip(v.keys().skip(1)).all(|(a, b)| a < b));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&[0xa1u8][..], &[0xa2, 0x01], &[0x80], &[0xbf, 0x01, 0x02]] {
            assert!(minicbor::decode::<VecMap<u32, u32>>(bytes).is_err());
        }
    }
}

//! [`Text`]: a string that many records repeat, shared instead of copied.
//!
//! Every allocation the servers keep carries its tasks' recent events, and
//! their kinds and messages are a handful of strings ("Started", "task
//! started by client", "exit code 0") repeated in each: ten heap strings of
//! their own per allocation, some 400 bytes with the allocator's overhead,
//! for each of the 10,000 allocations a busy agent keeps. Equal
//! texts decoded or built at run time share one allocation through a small
//! table; the table is bounded, so text that does not repeat (a driver's
//! error with a path in it) costs what a `String` would and no more.
//!
//! A `Text` reads as a `&str` (it derefs to one), compares with strings,
//! and is encoded exactly as a string is, in CBOR and in JSON.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use minicbor::decode::Decoder;
use minicbor::encode::{Encoder, Write};
use minicbor::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest text the table shares; longer text is rarely repeated verbatim.
const MAX_SHARED_LEN: usize = 128;
/// Most texts the table holds (at most 128 KiB): once full, new texts are
/// no longer shared, and those already in it still are.
const MAX_SHARED: usize = 1024;

static TABLE: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();

/// An immutable string, shared with every equal one the process made.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    /// A text from a literal: no allocation, nothing shared.
    pub const fn from_static(s: &'static str) -> Text {
        Text(Repr::Static(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    fn shared(s: &str) -> Text {
        if s.is_empty() {
            return Text::default();
        }
        if s.len() > MAX_SHARED_LEN {
            return Text(Repr::Shared(Arc::from(s)));
        }
        let table = TABLE.get_or_init(Mutex::default);
        // A set of strings; a poisoned lock still holds a usable one.
        let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = table.get(s) {
            return Text(Repr::Shared(found.clone()));
        }
        let new: Arc<str> = Arc::from(s);
        if table.len() < MAX_SHARED {
            table.insert(new.clone());
        }
        Text(Repr::Shared(new))
    }
}

impl Default for Text {
    fn default() -> Text {
        Text::from_static("")
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text::shared(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::shared(&s)
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl<C> Encode<C> for Text {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.str(self.as_str())?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for Text {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Text, minicbor::decode::Error> {
        // What a String field accepts: a definite-length text string.
        Ok(Text::shared(d.str()?))
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Text::shared(&s))
    }
}

#[cfg(test)]
impl<'a> arbitrary::Arbitrary<'a> for Text {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Text> {
        Ok(Text::shared(&String::arbitrary(u)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_allocation() {
        let a = Text::from("task started by client".to_owned());
        let b: Text = crate::codec::from_cbor(&crate::codec::to_cbor(&a)).unwrap();
        let (Repr::Shared(x), Repr::Shared(y)) = (&a.0, &b.0) else {
            panic!("run-time texts are shared");
        };
        assert!(Arc::ptr_eq(x, y));
        assert_eq!(b, "task started by client");
        assert_eq!(Text::from_static("task started by client"), a);
    }

    #[test]
    fn encodes_as_a_string_in_cbor_and_json() {
        let t = Text::from("Started");
        assert_eq!(
            crate::codec::to_cbor(&t),
            crate::codec::to_cbor(&"Started".to_owned())
        );
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"Started\"");
        let back: Text = serde_json::from_str("\"Sta\\u0072ted\"").unwrap();
        assert_eq!(back, "Started");
        let s: Result<Text, _> = crate::codec::from_cbor(&crate::codec::to_cbor(&7u32));
        assert!(s.is_err(), "a number is not a text");
    }

    #[test]
    fn long_texts_are_not_kept_in_the_table() {
        let long = "x".repeat(MAX_SHARED_LEN + 1);
        let a = Text::from(long.as_str());
        let b = Text::from(long.as_str());
        let (Repr::Shared(x), Repr::Shared(y)) = (&a.0, &b.0) else {
            panic!("run-time texts are Arcs");
        };
        assert!(!Arc::ptr_eq(x, y));
        assert_eq!(a, b);
    }
}

//! [`Transfer`]: what may cross into a child started with
//! [`Process::spawn`](crate::Process::spawn), and how.
//!
//! A spawned child is a new program (this one, executed again): nothing of the parent's memory
//! reaches it, so its arguments travel as bytes. Values travel by value; region handles
//! travel by *name*: a named region as its path, an anonymous one as its memfd descriptor
//! (kept open across `exec` for that child), and each object as its name in the region, which
//! the child opens again with the same checks as any other opener. A type that does not
//! implement [`Transfer`] cannot be passed: that is a compile error, never undefined
//! behaviour.

use crate::error::{Error, Result};
use crate::region::{Object, Region};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

/// A value that can be passed to a child started with
/// [`Process::spawn`](crate::Process::spawn).
///
/// Implemented for integers, floats, `bool`, `char`, `String`, `PathBuf`, `Duration`, `()`,
/// `Option`, `Vec`, arrays and tuples of them, for [`Region`] and for every handle of a region
/// object ([`Lock`](crate::Lock), [`Value`](crate::Value), [`Semaphore`](crate::Semaphore)...).
/// Implement it for your own types by encoding and decoding their fields in order:
///
/// ```
/// use shmsync::{Decoder, Encoder, Lock, Transfer};
///
/// struct Job {
///     id: u32,
///     lock: Lock,
/// }
///
/// impl Transfer for Job {
///     fn encode(&self, out: &mut Encoder) -> shmsync::Result<()> {
///         self.id.encode(out)?;
///         self.lock.encode(out)
///     }
///     fn decode(input: &mut Decoder) -> shmsync::Result<Self> {
///         Ok(Job { id: u32::decode(input)?, lock: Lock::decode(input)? })
///     }
/// }
/// ```
pub trait Transfer: Sized {
    /// Writes `self` for the child.
    ///
    /// # Errors
    ///
    /// If `self` cannot travel (a region handle whose region has neither a path nor a
    /// descriptor).
    fn encode(&self, out: &mut Encoder) -> Result<()>;

    /// Reads a value written by [`Transfer::encode`], in the child.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the bytes end early or are not such a value; a region
    /// handle's opening errors (the object is opened by name, with every check).
    fn decode(input: &mut Decoder) -> Result<Self>;
}

/// The bytes (and region descriptors) a child's arguments travel as.
#[derive(Debug, Default)]
pub struct Encoder {
    bytes: Vec<u8>,
    fds: Vec<RawFd>,
}

impl Encoder {
    pub(crate) fn new() -> Encoder {
        Encoder::default()
    }

    /// The encoded bytes and the descriptors the child must inherit.
    pub(crate) fn finish(self) -> (Vec<u8>, Vec<RawFd>) {
        (self.bytes, self.fds)
    }

    /// Appends raw bytes.
    fn put(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Appends a length.
    fn put_len(&mut self, len: usize) {
        self.put(&(len as u64).to_le_bytes());
    }

    /// Appends a region: its path if it has one, otherwise its descriptor (which the child
    /// inherits).
    pub(crate) fn region(&mut self, region: &Region) -> Result<()> {
        match region.path() {
            Some(path) => {
                self.put(&[0]);
                let bytes = path.as_os_str().as_encoded_bytes();
                self.put_len(bytes.len());
                self.put(bytes);
            }
            None => {
                let fd = region.as_fd().as_raw_fd();
                self.put(&[1]);
                self.put(&(fd as u32).to_le_bytes());
                if !self.fds.contains(&fd) {
                    self.fds.push(fd);
                }
            }
        }
        Ok(())
    }

    /// Appends an object: its region and its name.
    pub(crate) fn object(&mut self, object: &Object) -> Result<()> {
        self.region(&object.region_handle())?;
        object.name().to_string().encode(self)
    }
}

/// Reads a child's arguments back.
#[derive(Debug)]
pub struct Decoder {
    bytes: Vec<u8>,
    at: usize,
    /// The descriptors the parent kept open for this child (the only ones a region may name).
    allowed: Vec<RawFd>,
    /// Regions attached from inherited descriptors, by descriptor number.
    inherited: HashMap<RawFd, Region>,
}

impl Decoder {
    /// A decoder of `bytes`, in a child that inherited the region descriptors `allowed`.
    pub(crate) fn new(bytes: Vec<u8>, allowed: Vec<RawFd>) -> Decoder {
        Decoder {
            bytes,
            at: 0,
            allowed,
            inherited: HashMap::new(),
        }
    }

    /// Whether every byte was read.
    pub(crate) fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| bad("the arguments end early"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn take_len(&mut self) -> Result<usize> {
        let len = u64::from_le_bytes(self.take_array()?);
        // A length beyond the bytes left is refused, except for up to 2^20 elements (which may
        // be zero-sized); nothing is allocated ahead from a length anyway.
        usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.bytes.len() - self.at || l <= 1 << 20)
            .ok_or_else(|| bad("a length beyond the arguments"))
    }

    /// Reads a region written by [`Encoder::region`].
    pub(crate) fn region(&mut self) -> Result<Region> {
        match self.take_array::<1>()? {
            [0] => {
                let len = self.take_len()?;
                let bytes = self.take(len)?.to_vec();
                // On Unix any bytes are an `OsStr`.
                let path = PathBuf::from(std::ffi::OsString::from(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes),
                ));
                Region::open(path)
            }
            [1] => {
                let fd = u32::from_le_bytes(self.take_array()?) as RawFd;
                if !self.allowed.contains(&fd) {
                    return Err(bad(&format!(
                        "descriptor {fd} is not one the parent handed over"
                    )));
                }
                if let Some(region) = self.inherited.get(&fd) {
                    return Ok(region.clone());
                }
                let own = crate::sys::dup_inherited(fd).map_err(|e| {
                    Error::io("open an anonymous region's inherited descriptor", None, e)
                })?;
                let region = Region::from_fd(own.as_fd())?;
                self.inherited.insert(fd, region.clone());
                Ok(region)
            }
            [tag] => Err(bad(&format!("unknown region tag {tag}"))),
        }
    }

    /// Reads an object's region and name, written by [`Encoder::object`].
    pub(crate) fn object(&mut self) -> Result<(Region, String)> {
        let region = self.region()?;
        let name = String::decode(self)?;
        Ok((region, name))
    }
}

fn bad(what: &str) -> Error {
    Error::InvalidArgument(format!("spawned process arguments: {what}"))
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Transfer for $t {
            fn encode(&self, out: &mut Encoder) -> Result<()> {
                out.put(&self.to_le_bytes());
                Ok(())
            }
            fn decode(input: &mut Decoder) -> Result<Self> {
                Ok(<$t>::from_le_bytes(input.take_array()?))
            }
        }
    )*};
}
number!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl Transfer for usize {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        (*self as u64).encode(out)
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        usize::try_from(u64::decode(input)?).map_err(|_| bad("a usize out of range"))
    }
}

impl Transfer for isize {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        (*self as i64).encode(out)
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        isize::try_from(i64::decode(input)?).map_err(|_| bad("an isize out of range"))
    }
}

impl Transfer for bool {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        u8::from(*self).encode(out)
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(bad(&format!("{b} is not a bool"))),
        }
    }
}

impl Transfer for char {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        u32::from(*self).encode(out)
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        let c = u32::decode(input)?;
        char::from_u32(c).ok_or_else(|| bad(&format!("{c:#x} is not a char")))
    }
}

impl Transfer for () {
    fn encode(&self, _: &mut Encoder) -> Result<()> {
        Ok(())
    }
    fn decode(_: &mut Decoder) -> Result<Self> {
        Ok(())
    }
}

impl Transfer for String {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        out.put_len(self.len());
        out.put(self.as_bytes());
        Ok(())
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        let len = input.take_len()?;
        String::from_utf8(input.take(len)?.to_vec()).map_err(|_| bad("a string is not UTF-8"))
    }
}

impl Transfer for PathBuf {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        let bytes = self.as_os_str().as_encoded_bytes();
        out.put_len(bytes.len());
        out.put(bytes);
        Ok(())
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        let len = input.take_len()?;
        let bytes = input.take(len)?;
        Ok(PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes),
        ))
    }
}

impl Transfer for Duration {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        self.as_secs().encode(out)?;
        self.subsec_nanos().encode(out)
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        let secs = u64::decode(input)?;
        let nanos = u32::decode(input)?;
        if nanos >= 1_000_000_000 {
            return Err(bad("a duration's nanoseconds out of range"));
        }
        Ok(Duration::new(secs, nanos))
    }
}

impl<T: Transfer> Transfer for Option<T> {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        match self {
            None => false.encode(out),
            Some(v) => {
                true.encode(out)?;
                v.encode(out)
            }
        }
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        Ok(match bool::decode(input)? {
            false => None,
            true => Some(T::decode(input)?),
        })
    }
}

impl<T: Transfer> Transfer for Vec<T> {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        out.put_len(self.len());
        self.iter().try_for_each(|v| v.encode(out))
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        let len = input.take_len()?;
        (0..len).map(|_| T::decode(input)).collect()
    }
}

impl<T: Transfer, const N: usize> Transfer for [T; N] {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        self.iter().try_for_each(|v| v.encode(out))
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        let items = (0..N)
            .map(|_| T::decode(input))
            .collect::<Result<Vec<T>>>()?;
        Ok(items
            .try_into()
            .unwrap_or_else(|_| unreachable!("decoded exactly N items")))
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: Transfer),+> Transfer for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Encoder) -> Result<()> {
                let ($($name,)+) = self;
                $($name.encode(out)?;)+
                Ok(())
            }
            fn decode(input: &mut Decoder) -> Result<Self> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);
tuple!(A, B, C, D, E, F, G);
tuple!(A, B, C, D, E, F, G, H);

impl Transfer for Region {
    fn encode(&self, out: &mut Encoder) -> Result<()> {
        out.region(self)
    }
    fn decode(input: &mut Decoder) -> Result<Self> {
        input.region()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Transfer + PartialEq + std::fmt::Debug>(value: T) {
        let mut out = Encoder::new();
        value.encode(&mut out).unwrap();
        let (bytes, fds) = out.finish();
        assert!(fds.is_empty());
        let mut input = Decoder::new(bytes, vec![]);
        assert_eq!(T::decode(&mut input).unwrap(), value);
        assert!(input.is_done());
    }

    #[test]
    fn values_round_trip() {
        round_trip(7u8);
        round_trip(-7i64);
        round_trip(3.5f64);
        round_trip(usize::MAX);
        round_trip(true);
        round_trip('é');
        round_trip(String::from("naïve"));
        round_trip(PathBuf::from("/dev/shm/x"));
        round_trip(Duration::new(3, 999_999_999));
        round_trip(Some(vec![1u32, 2, 3]));
        round_trip((1u8, String::from("a"), [2u16, 3], None::<u8>));
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let decode = |bytes: &[u8]| -> Result<(String, Vec<u64>)> {
            let mut input = Decoder::new(bytes.to_vec(), vec![]);
            <(String, Vec<u64>)>::decode(&mut input)
        };
        assert!(decode(&[]).is_err());
        assert!(decode(&[5, 0, 0, 0, 0, 0, 0, 0, b'a']).is_err());
        assert!(decode(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        let mut huge = vec![0u8; 8];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        let mut input = Decoder::new(vec![2], vec![]);
        assert!(bool::decode(&mut input).is_err());
        let mut input = Decoder::new(vec![9], vec![]);
        assert!(input.region().is_err());
        // A descriptor the parent did not hand over is refused, whatever is open under it.
        let mut input = Decoder::new(vec![1, 0, 0, 0, 0], vec![]);
        let e = input.region().unwrap_err();
        assert!(
            e.to_string().contains("not one the parent handed over"),
            "{e}"
        );
    }
}

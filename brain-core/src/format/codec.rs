//! Codec tags: how a payload's bytes are to be read.
//!
//! The store keeps bytes and a codec tag; the typed layers choose the codec.
//! Each codec's layout is specified in `docs/FORMAT.md`.

use std::fmt;

/// The codec tag stored in every object header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Opaque bytes.
    Raw,
    /// UTF-8 text.
    Text,
    /// An Arrow IPC file (schema, dictionaries, record batches).
    ArrowIpc,
    /// An n-dimensional array: dtype, shape, order and its buffer ([`super::parts`] layout).
    NdArray,
    /// A pickle protocol 5 stream with out-of-band buffers ([`super::parts`] layout).
    Pickle5,
    /// A pandas DataFrame or Series as an Arrow IPC file whose schema metadata lets pandas rebuild it.
    PandasArrow,
    /// A polars DataFrame or Series as an Arrow IPC file.
    PolarsArrow,
    /// The manifest of a frame stored in parts: a table whose columns and
    /// rows live in other objects (`brain_core::frames`).
    FrameParts,
    /// A tag this build does not know (written by a newer release).
    Unknown(u16),
}

impl Codec {
    /// The tag as stored in the header.
    pub fn tag(self) -> u16 {
        match self {
            Codec::Raw => 0,
            Codec::Text => 1,
            Codec::ArrowIpc => 2,
            Codec::NdArray => 3,
            Codec::Pickle5 => 4,
            Codec::PandasArrow => 5,
            Codec::PolarsArrow => 6,
            Codec::FrameParts => 7,
            Codec::Unknown(tag) => tag,
        }
    }

    /// The codec of a stored tag.
    pub fn from_tag(tag: u16) -> Self {
        match tag {
            0 => Codec::Raw,
            1 => Codec::Text,
            2 => Codec::ArrowIpc,
            3 => Codec::NdArray,
            4 => Codec::Pickle5,
            5 => Codec::PandasArrow,
            6 => Codec::PolarsArrow,
            7 => Codec::FrameParts,
            other => Codec::Unknown(other),
        }
    }

    /// A short lowercase name, as shown by `brain ls` and accepted by `brain put --codec`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Text => "text",
            Codec::ArrowIpc => "arrow",
            Codec::NdArray => "ndarray",
            Codec::Pickle5 => "pickle5",
            Codec::PandasArrow => "pandas",
            Codec::PolarsArrow => "polars",
            Codec::FrameParts => "frame-parts",
            Codec::Unknown(_) => "unknown",
        }
    }

    /// The codec with this [`Codec::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Codec::Raw,
            Codec::Text,
            Codec::ArrowIpc,
            Codec::NdArray,
            Codec::Pickle5,
            Codec::PandasArrow,
            Codec::PolarsArrow,
            Codec::FrameParts,
        ]
        .into_iter()
        .find(|codec| codec.name() == name)
    }

    /// True for the codecs whose payload is an Arrow IPC file.
    pub fn is_arrow(self) -> bool {
        matches!(
            self,
            Codec::ArrowIpc | Codec::PandasArrow | Codec::PolarsArrow
        )
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Unknown(tag) => write!(f, "unknown codec {tag}"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_names_round_trip() {
        for tag in 0..20 {
            let codec = Codec::from_tag(tag);
            assert_eq!(codec.tag(), tag);
            if !matches!(codec, Codec::Unknown(_)) {
                assert_eq!(Codec::from_name(codec.name()), Some(codec));
            }
        }
    }
}

//! Discord's transport compression, the client's half: the gateway compresses every frame
//! of a connection as one stream (`compress=zlib-stream` or `zstd-stream` in the URL),
//! and the client inflates it with one context of that connection. A context is created
//! when its socket opens and dropped with it, so none can outlive its connection.

use flate2::{Decompress, FlushDecompress};

use crate::protocol::Malformed;

/// A transport compression Discord offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// One zlib stream per connection; a message ends where a sync flush (`00 00 ff ff`)
    /// does, possibly over several WebSocket frames.
    ZlibStream,
    /// One zstd stream per connection; every message is flushed.
    ZstdStream,
}

impl Compression {
    /// The `compress` query parameter that asks for it.
    pub fn query_value(self) -> &'static str {
        match self {
            Self::ZlibStream => "zlib-stream",
            Self::ZstdStream => "zstd-stream",
        }
    }
}

/// The zlib flush that ends every message of a zlib stream.
const ZLIB_SUFFIX: [u8; 4] = [0, 0, 0xff, 0xff];

/// One connection's inflating context.
pub(crate) struct Inflater {
    kind: Kind,
    /// The most bytes a message may inflate to, or wait compressed for its end.
    max: usize,
}

enum Kind {
    Zlib {
        stream: Box<Decompress>,
        /// A message's frames before the one that ends it.
        pending: Vec<u8>,
    },
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Zlib { .. } => "zlib-stream",
            Kind::Zstd(_) => "zstd-stream",
        };
        f.debug_struct("Inflater")
            .field("kind", &kind)
            .field("max", &self.max)
            .finish()
    }
}

impl Inflater {
    /// A fresh context for a new connection; `max` bounds every message.
    pub(crate) fn new(compression: Compression, max: usize) -> Result<Self, Malformed> {
        let kind = match compression {
            Compression::ZlibStream => Kind::Zlib {
                stream: Box::new(Decompress::new(true)),
                pending: Vec::new(),
            },
            Compression::ZstdStream => Kind::Zstd(Box::new(
                zstd::stream::raw::Decoder::new()
                    .map_err(|_| Malformed::new("no zstd context could be made"))?,
            )),
        };
        Ok(Self { kind, max })
    }

    /// Takes one binary frame of the stream: the message it completes, as text, or `None`
    /// while a zlib message waits for its end. A corrupt stream, or a message over the
    /// bound, is malformed: the connection cannot go on with it.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Option<String>, Malformed> {
        let max = self.max;
        let inflated = match &mut self.kind {
            Kind::Zlib { stream, pending } => {
                if pending.len().saturating_add(bytes.len()) > max {
                    return Err(Malformed::new("a compressed message over the size allowed"));
                }
                pending.extend_from_slice(bytes);
                if !pending.ends_with(&ZLIB_SUFFIX) {
                    return Ok(None);
                }
                let message = std::mem::take(pending);
                inflate_zlib(stream, &message, max)?
            }
            Kind::Zstd(decoder) => inflate_zstd(decoder, bytes, max)?,
        };
        String::from_utf8(inflated)
            .map(Some)
            .map_err(|_| Malformed::new("an inflated message that is not UTF-8"))
    }
}

fn inflate_zlib(stream: &mut Decompress, input: &[u8], max: usize) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).clamp(256, max.max(256)));
    let mut taken = 0usize;
    loop {
        let (before_in, before_out) = (stream.total_in(), out.len());
        let rest = input.get(taken..).unwrap_or_default();
        stream
            .decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .map_err(|e| Malformed::new(format!("a corrupt zlib stream: {e}")))?;
        let consumed = usize::try_from(stream.total_in().saturating_sub(before_in))
            .map_err(|_| Malformed::new("a corrupt zlib stream"))?;
        taken = taken.saturating_add(consumed);
        if taken >= input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if out.len() >= max {
            return Err(Malformed::new(
                "a message that inflates over the size allowed",
            ));
        }
        if consumed == 0 && out.len() == before_out && out.len() < out.capacity() {
            // Neither read nor written with room to spare: the stream stops short.
            return Err(Malformed::new("a zlib stream that stops short"));
        }
        let grow = out
            .capacity()
            .clamp(256, max.saturating_sub(out.len()).max(1));
        out.reserve(grow);
    }
}

fn inflate_zstd(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    input: &[u8],
    max: usize,
) -> Result<Vec<u8>, Malformed> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let corrupt = || Malformed::new("a corrupt zstd stream");
    let mut out = vec![0u8; input.len().saturating_mul(4).clamp(256, max.max(256))];
    let mut written = 0usize;
    let mut source = InBuffer::around(input);
    loop {
        let room = out.get_mut(written..).ok_or_else(corrupt)?;
        let mut sink = OutBuffer::around(room);
        let read_before = source.pos();
        decoder.run(&mut source, &mut sink).map_err(|_| corrupt())?;
        let produced = sink.pos();
        let full = produced == sink.capacity();
        written = written.saturating_add(produced);
        if source.pos() >= input.len() && !full {
            out.truncate(written);
            return Ok(out);
        }
        if written >= max {
            return Err(Malformed::new(
                "a message that inflates over the size allowed",
            ));
        }
        if produced == 0 && source.pos() == read_before && !full {
            // Neither read nor written with room to spare: the stream stops short.
            return Err(corrupt());
        }
        let grow = out.len().clamp(256, max.saturating_sub(written).max(1));
        out.resize(out.len().saturating_add(grow), 0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    /// A zlib stream as the gateway writes it: each message ends with a sync flush.
    fn zlib_messages(texts: &[&str]) -> Vec<Vec<u8>> {
        let mut z = flate2::Compress::new(flate2::Compression::default(), true);
        texts
            .iter()
            .map(|text| {
                let mut out = Vec::with_capacity(text.len() + 1024);
                z.compress_vec(text.as_bytes(), &mut out, flate2::FlushCompress::Sync)
                    .unwrap();
                out
            })
            .collect()
    }

    fn zstd_messages(texts: &[&str]) -> Vec<Vec<u8>> {
        let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        texts
            .iter()
            .map(|text| {
                z.write_all(text.as_bytes()).unwrap();
                z.flush().unwrap();
                std::mem::take(z.get_mut())
            })
            .collect()
    }

    #[test]
    fn zlib_messages_inflate_in_order_even_split_across_frames() {
        let big = "x".repeat(300_000);
        let texts = ["{\"op\":10}", big.as_str(), "{\"op\":11}"];
        let mut inflater = Inflater::new(Compression::ZlibStream, 1 << 20).unwrap();
        for (text, bytes) in texts.iter().zip(zlib_messages(&texts)) {
            // The message in two frames: nothing until its end.
            let (head, tail) = bytes.split_at(bytes.len() / 2);
            assert_eq!(inflater.push(head).unwrap(), None);
            assert_eq!(inflater.push(tail).unwrap().as_deref(), Some(*text));
        }
    }

    #[test]
    fn zstd_messages_inflate_in_order() {
        let big = "y".repeat(300_000);
        let texts = ["{\"op\":10}", big.as_str(), "{\"op\":11}"];
        let mut inflater = Inflater::new(Compression::ZstdStream, 1 << 20).unwrap();
        for (text, bytes) in texts.iter().zip(zstd_messages(&texts)) {
            assert_eq!(inflater.push(&bytes).unwrap().as_deref(), Some(*text));
        }
    }

    #[test]
    fn corrupt_or_oversized_streams_are_malformed_never_a_panic() {
        let mut zlib = Inflater::new(Compression::ZlibStream, 1 << 20).unwrap();
        assert!(zlib.push(&[1, 2, 3, 4, 0, 0, 0xff, 0xff]).is_err());
        let mut zstd = Inflater::new(Compression::ZstdStream, 1 << 20).unwrap();
        assert!(zstd.push(&[0xde, 0xad, 0xbe, 0xef]).is_err());
        // A bomb: a small message that inflates past the bound.
        let bomb = "z".repeat(2 << 20);
        let mut zlib = Inflater::new(Compression::ZlibStream, 1 << 20).unwrap();
        assert!(zlib.push(&zlib_messages(&[&bomb])[0]).is_err());
        let mut zstd = Inflater::new(Compression::ZstdStream, 1 << 20).unwrap();
        assert!(zstd.push(&zstd_messages(&[&bomb])[0]).is_err());
        // Frames that never end a zlib message cannot pile up past the bound.
        let mut zlib = Inflater::new(Compression::ZlibStream, 1024).unwrap();
        assert!(zlib.push(&[7; 600]).unwrap().is_none());
        assert!(zlib.push(&[7; 600]).is_err());
    }
}

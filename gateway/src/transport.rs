//! What a discord client asks of its connection in the URL (`?v=10&encoding=json&compress=
//! zlib-stream`), and the transport compression it asked for: every frame the gateway
//! writes on that connection goes through the one compression context the connection
//! owns, created with it and dropped with it.

use std::io::Write;

use flate2::{Compress, FlushCompress};
use tether_core::Frame;

use crate::CloseWhy;

/// The transport compressions Discord offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// One zlib stream per connection; every message ends with a sync flush
    /// (`00 00 ff ff`).
    ZlibStream,
    /// One zstd stream per connection; every message is flushed.
    ZstdStream,
}

/// Reads a discord URL's query: `v` 10 or 9 (absent: 10), `encoding` json (absent: json),
/// `compress` as [`Compression`] (absent: none). Anything else is the close it earns.
pub(crate) fn read_query(query: Option<&str>) -> Result<Option<Compression>, CloseWhy> {
    let mut compression = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "v" if value == "10" || value == "9" => {}
            "v" => return Err(CloseWhy::InvalidApiVersion),
            "encoding" if value == "json" => {}
            "encoding" => return Err(CloseWhy::UnsupportedEncoding),
            "compress" => {
                compression = Some(match value {
                    "zlib-stream" => Compression::ZlibStream,
                    "zstd-stream" => Compression::ZstdStream,
                    _ => return Err(CloseWhy::UnsupportedCompression),
                });
            }
            // Other parameters are no business of the gateway's (as Discord ignores them).
            _ => {}
        }
    }
    Ok(compression)
}

/// A connection's compression context.
pub(crate) enum Compressor {
    Zlib(Box<Compress>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Zlib(_) => "Compressor::Zlib",
            Self::Zstd(_) => "Compressor::Zstd",
        })
    }
}

/// Why a frame could not be compressed: the connection cannot go on (its stream would
/// be out of step with the client's).
#[derive(Debug)]
pub(crate) struct CompressFailed;

impl Compressor {
    /// A fresh context for `compression`; `None` if zstd cannot make one.
    pub(crate) fn new(compression: Compression) -> Option<Self> {
        match compression {
            // Level 6, zlib's default, as Discord's own stream.
            Compression::ZlibStream => Some(Self::Zlib(Box::new(Compress::new(
                flate2::Compression::default(),
                true,
            )))),
            Compression::ZstdStream => zstd::stream::write::Encoder::new(Vec::new(), 3)
                .ok()
                .map(|encoder| Self::Zstd(Box::new(encoder))),
        }
    }

    /// `frame` as the client reads it off this connection: a text frame's bytes through
    /// the stream, as one binary message; other frames as they are.
    pub(crate) fn compress(&mut self, frame: Frame) -> Result<Frame, CompressFailed> {
        let Frame::Text(text) = frame else {
            return Ok(frame);
        };
        let bytes = match self {
            Self::Zlib(zlib) => zlib_flush(zlib, text.as_str().as_bytes())?,
            Self::Zstd(zstd) => {
                zstd.write_all(text.as_str().as_bytes())
                    .map_err(|_| CompressFailed)?;
                // A flush ends a block the client can decode now, the stream going on.
                zstd.flush().map_err(|_| CompressFailed)?;
                std::mem::take(zstd.get_mut())
            }
        };
        Ok(Frame::Binary(bytes.into()))
    }
}

/// `input` through `zlib`, ended with a sync flush.
fn zlib_flush(zlib: &mut Compress, input: &[u8]) -> Result<Vec<u8>, CompressFailed> {
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    let mut taken = 0;
    loop {
        let before = zlib.total_in();
        let rest = input.get(taken..).unwrap_or_default();
        zlib.compress_vec(rest, &mut out, FlushCompress::Sync)
            .map_err(|_| CompressFailed)?;
        let consumed = zlib.total_in().saturating_sub(before);
        taken = taken.saturating_add(usize::try_from(consumed).map_err(|_| CompressFailed)?);
        // Room left over means the flush is complete; a full buffer may hold more.
        if taken >= input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use super::*;

    #[test]
    fn the_query_decides_version_encoding_and_compression() {
        assert_eq!(read_query(None), Ok(None));
        assert_eq!(read_query(Some("v=10&encoding=json")), Ok(None));
        assert_eq!(read_query(Some("v=9")), Ok(None));
        assert_eq!(
            read_query(Some("v=10&encoding=json&compress=zlib-stream")),
            Ok(Some(Compression::ZlibStream))
        );
        assert_eq!(
            read_query(Some("compress=zstd-stream&v=10")),
            Ok(Some(Compression::ZstdStream))
        );
        assert_eq!(read_query(Some("v=6")), Err(CloseWhy::InvalidApiVersion));
        assert_eq!(read_query(Some("v=99")), Err(CloseWhy::InvalidApiVersion));
        assert_eq!(
            read_query(Some("encoding=etf")),
            Err(CloseWhy::UnsupportedEncoding)
        );
        assert_eq!(
            read_query(Some("encoding=bogus")),
            Err(CloseWhy::UnsupportedEncoding)
        );
        assert_eq!(
            read_query(Some("compress=gzip")),
            Err(CloseWhy::UnsupportedCompression)
        );
    }

    fn binary(frame: Frame) -> Vec<u8> {
        match frame {
            Frame::Binary(bytes) => bytes.to_vec(),
            other => panic!("binary, not {other:?}"),
        }
    }

    #[test]
    fn zlib_stream_messages_end_with_a_sync_flush_and_read_back_as_one_stream() {
        let mut zlib = Compressor::new(Compression::ZlibStream).unwrap();
        let texts = ["{\"op\":10}", &"x".repeat(200_000), "{\"op\":11}"];
        let mut stream = Vec::new();
        for text in texts {
            let bytes = binary(zlib.compress(Frame::text(text.to_owned())).unwrap());
            assert!(bytes.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush ends it");
            stream.extend_from_slice(&bytes);
        }
        let mut read = String::new();
        // The stream never ends: read what there is.
        let _ = flate2::read::ZlibDecoder::new(&stream[..]).read_to_string(&mut read);
        assert_eq!(read, texts.concat());
    }

    #[test]
    fn zstd_stream_messages_each_decode_as_they_come() {
        let mut zstd = Compressor::new(Compression::ZstdStream).unwrap();
        let mut decoder = zstd::stream::raw::Decoder::new().unwrap();
        for text in ["{\"op\":10}", &"y".repeat(100_000), "{\"op\":11}"] {
            let bytes = binary(zstd.compress(Frame::text(text.to_owned())).unwrap());
            let mut out = vec![0u8; text.len() + 1024];
            let mut input = zstd::stream::raw::InBuffer::around(&bytes);
            let mut output = zstd::stream::raw::OutBuffer::around(&mut out[..]);
            use zstd::stream::raw::Operation;
            while input.pos() < bytes.len() {
                decoder.run(&mut input, &mut output).unwrap();
            }
            let n = output.pos();
            assert_eq!(&out[..n], text.as_bytes());
        }
    }
}

//! A WebSocket client written by hand, for playing a hostile peer: it upgrades with a plain
//! HTTP request and then writes whatever bytes a test asks for (unmasked frames, reserved
//! bits, invalid UTF-8, headers that promise more than ever comes), and reads the server's
//! frames one by one.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opcodes.
pub const TEXT: u8 = 0x1;
pub const CONTINUATION: u8 = 0x0;
pub const CLOSE: u8 = 0x8;

/// One frame as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code, for a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// How a frame is written.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub fin: bool,
    pub rsv: u8,
    pub masked: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            fin: true,
            rsv: 0,
            masked: true,
        }
    }
}

/// The bytes of one frame: `len` is what the header promises, which may be more than
/// `payload` (the rest never comes, or comes later).
pub fn frame_bytes(opcode: u8, payload: &[u8], len: u64, shape: Shape) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((u8::from(shape.fin) << 7) | ((shape.rsv & 0x7) << 4) | (opcode & 0xf));
    let mask_bit = if shape.masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if shape.masked {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked, final text frame.
pub fn text_frame(text: &str) -> Vec<u8> {
    frame_bytes(TEXT, text.as_bytes(), text.len() as u64, Shape::default())
}

pub struct RawWs {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    /// Connects to `addr` and upgrades; panics if the server does not answer 101.
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        let (ws, status) = Self::try_connect(addr).await.expect("connect");
        assert!(
            status.starts_with("HTTP/1.1 101"),
            "upgrade refused: {status}"
        );
        ws
    }

    /// Connects and sends the upgrade request; the socket and the response's status line.
    pub async fn try_connect(addr: std::net::SocketAddr) -> std::io::Result<(Self, String)> {
        Self::upgrade(TcpStream::connect(addr).await?, addr).await
    }

    /// Connects with a receive buffer of `bytes`, so a server writing to a client that does
    /// not read fills its own queue soon rather than the kernel's buffers; then upgrades.
    pub async fn connect_stingy(addr: std::net::SocketAddr, bytes: u32) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("receive buffer");
        let tcp = socket.connect(addr).await.expect("connect");
        let (ws, status) = Self::upgrade(tcp, addr).await.expect("upgrade");
        assert!(
            status.starts_with("HTTP/1.1 101"),
            "upgrade refused: {status}"
        );
        ws
    }

    async fn upgrade(
        mut tcp: TcpStream,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<(Self, String)> {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut ws = Self {
            tcp,
            buf: Vec::new(),
        };
        let head = loop {
            if let Some(end) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = ws.buf.drain(..end + 4).collect();
                break String::from_utf8_lossy(&head).into_owned();
            }
            if ws.fill().await? == 0 {
                break String::from_utf8_lossy(&ws.buf).into_owned();
            }
        };
        let status = head.lines().next().unwrap_or_default().to_owned();
        Ok((ws, status))
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.tcp.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.write(&text_frame(text)).await
    }

    /// The next frame, or `None` once the server closed the connection or `limit` passed.
    pub async fn read_frame(&mut self, limit: Duration) -> Option<ServerFrame> {
        tokio::time::timeout(limit, self.next_frame())
            .await
            .ok()
            .flatten()
    }

    async fn next_frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            match self.fill().await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the server's close frame; its code, or `None` if the connection ended
    /// without one (or `limit` passed).
    pub async fn close_code(&mut self, limit: Duration) -> Option<u16> {
        tokio::time::timeout(limit, async {
            while let Some(frame) = self.next_frame().await {
                if frame.opcode == CLOSE {
                    return frame.close_code();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

/// One unmasked server frame from the front of `buf`, and the bytes it took.
fn parse(buf: &[u8]) -> Option<(ServerFrame, usize)> {
    let first = *buf.first()?;
    let second = *buf.get(1)?;
    let (len, mut at) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    if second & 0x80 != 0 {
        at += 4;
    }
    let end = at + usize::try_from(len).ok()?;
    let payload = buf.get(at..end)?.to_vec();
    Some((
        ServerFrame {
            opcode: first & 0xf,
            payload,
        },
        end,
    ))
}

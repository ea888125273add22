//! A Kafka without some admin APIs, made from the real one: a TCP proxy in front of the local
//! Kafka that removes API keys from the broker's ApiVersions answer (so librdkafka believes the
//! broker lacks them, as an older broker would) and points the brokers of Metadata answers at
//! itself (so every connection goes through it). Everything else passes unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const API_VERSIONS: i16 = 18;
const METADATA: i16 = 3;
/// DescribeConfigs, AlterConfigs, IncrementalAlterConfigs.
pub const CONFIG_APIS: [i16; 3] = [32, 33, 44];

/// The proxy; it stops when dropped.
pub struct OldKafka {
    pub port: u16,
    task: JoinHandle<()>,
}

impl OldKafka {
    /// Listens on a free port and forwards to `upstream` (`host:port`) without `hidden` APIs.
    pub async fn start(upstream: &str, hidden: &'static [i16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, port, hidden).await;
                    }
                });
            }
        });
        Self { port, task }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OldKafka {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let n = s.read_i32().await? as usize;
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), buf: &[u8]) -> std::io::Result<()> {
    s.write_i32(buf.len() as i32).await?;
    s.write_all(buf).await
}

type Inflight = Arc<Mutex<HashMap<i32, (i16, i16)>>>;

async fn relay(
    client: TcpStream,
    server: TcpStream,
    port: u16,
    hidden: &'static [i16],
) -> std::io::Result<()> {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Correlation id → (API key, version) of the requests in flight.
    let inflight = Inflight::default();
    let up = tokio::spawn(requests(cr, sw, inflight.clone()));
    let r = responses(sr, cw, inflight, port, hidden).await;
    up.abort();
    r
}

async fn requests(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    inflight: Inflight,
) -> std::io::Result<()> {
    loop {
        let req = read_frame(&mut from).await?;
        if req.len() >= 8 {
            let key = i16::from_be_bytes([req[0], req[1]]);
            let version = i16::from_be_bytes([req[2], req[3]]);
            let id = i32::from_be_bytes([req[4], req[5], req[6], req[7]]);
            inflight.lock().unwrap().insert(id, (key, version));
        }
        write_frame(&mut to, &req).await?;
    }
}

async fn responses(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    inflight: Inflight,
    port: u16,
    hidden: &[i16],
) -> std::io::Result<()> {
    loop {
        let mut resp = read_frame(&mut from).await?;
        let id = i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]]);
        let request = inflight.lock().unwrap().remove(&id);
        match request {
            Some((API_VERSIONS, v)) => resp = without_apis(&resp, v, hidden),
            Some((METADATA, v)) => point_brokers_at(&mut resp, v, port),
            _ => {}
        }
        write_frame(&mut to, &resp).await?;
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        s
    }
    fn i16(&mut self) -> i16 {
        let b = self.take(2);
        i16::from_be_bytes([b[0], b[1]])
    }
    fn i32(&mut self) -> i32 {
        let b = self.take(4);
        i32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    fn uvarint(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.take(1)[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn tagged_fields(&mut self) {
        for _ in 0..self.uvarint() {
            self.uvarint();
            let n = self.uvarint() as usize;
            self.take(n);
        }
    }
    /// A string: compact (flexible versions) or with an i16 length; null is skipped too.
    fn string(&mut self, compact: bool) {
        let n = if compact {
            self.uvarint() as i64 - 1
        } else {
            i64::from(self.i16())
        };
        if n > 0 {
            self.take(n as usize);
        }
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An ApiVersions answer (header v0 at every version) without the `hidden` keys.
fn without_apis(resp: &[u8], version: i16, hidden: &[i16]) -> Vec<u8> {
    let flexible = version >= 3;
    let mut r = Reader { buf: resp, at: 4 };
    let error = r.i16();
    let n = if flexible {
        r.uvarint() as usize - 1
    } else {
        r.i32() as usize
    };
    let mut kept = Vec::new();
    let mut count: usize = 0;
    for _ in 0..n {
        let start = r.at;
        let key = r.i16();
        r.take(4);
        if flexible {
            r.tagged_fields();
        }
        if !hidden.contains(&key) {
            kept.extend_from_slice(&resp[start..r.at]);
            count += 1;
        }
    }
    let mut out = resp[..4].to_vec();
    out.extend_from_slice(&error.to_be_bytes());
    if flexible {
        put_uvarint(&mut out, count as u64 + 1);
    } else {
        out.extend_from_slice(&(count as i32).to_be_bytes());
    }
    out.extend_from_slice(&kept);
    out.extend_from_slice(&resp[r.at..]);
    out
}

/// Rewrites, in place, the port of every broker in a Metadata answer.
fn point_brokers_at(resp: &mut [u8], version: i16, port: u16) {
    let flexible = version >= 9;
    let mut ports = Vec::new();
    {
        let mut r = Reader { buf: resp, at: 4 };
        if flexible {
            r.tagged_fields();
        }
        if version >= 3 {
            r.i32();
        }
        let n = if flexible {
            r.uvarint() as usize - 1
        } else {
            r.i32() as usize
        };
        for _ in 0..n {
            r.i32();
            r.string(flexible);
            ports.push(r.at);
            r.i32();
            if version >= 1 {
                r.string(flexible);
            }
            if flexible {
                r.tagged_fields();
            }
        }
    }
    for at in ports {
        resp[at..at + 4].copy_from_slice(&i32::from(port).to_be_bytes());
    }
}

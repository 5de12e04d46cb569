//! A zip archive written as a stream: each entry goes out as soon as it is added (stored, not
//! compressed: media files are compressed already and JSON is small), and the central
//! directory at the end. Only the entry being written is in memory, so an export of any size
//! streams to the client through a bounded channel without being built first. Entries and the
//! archive stay under 4 GiB (no ZIP64): an export past that is refused, not corrupted.

use bytes::Bytes;
use tokio::sync::mpsc::Sender;

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// The reader went away (the client closed the connection).
    #[error("the archive's reader went away")]
    Closed,
    #[error("the archive would pass 4 GiB, which needs ZIP64")]
    TooLarge,
}

struct Central {
    name: String,
    crc: u32,
    size: u32,
    offset: u32,
}

/// Writes entries into `out` one at a time.
pub struct ZipStream {
    out: Sender<Bytes>,
    offset: u64,
    entries: Vec<Central>,
}

/// Bit 11: names are UTF-8.
const FLAGS: u16 = 0x0800;
const VERSION: u16 = 20;
/// 1980-01-01 00:00 in MS-DOS form: entries carry no time, so an export is byte-stable.
const DOS_DATE: u16 = 0x0021;

impl ZipStream {
    pub fn new(out: Sender<Bytes>) -> ZipStream {
        ZipStream {
            out,
            offset: 0,
            entries: Vec::new(),
        }
    }

    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), ZipError> {
        self.offset += chunk.len() as u64;
        if self.offset > u32::MAX as u64 {
            return Err(ZipError::TooLarge);
        }
        self.out
            .send(Bytes::from(chunk))
            .await
            .map_err(|_| ZipError::Closed)
    }

    /// Adds one file named `name` (a relative path with `/`).
    pub async fn add(&mut self, name: &str, data: Vec<u8>) -> Result<(), ZipError> {
        let size = u32::try_from(data.len()).map_err(|_| ZipError::TooLarge)?;
        let crc = crc32fast::hash(&data);
        let offset = u32::try_from(self.offset).map_err(|_| ZipError::TooLarge)?;
        let mut h = Vec::with_capacity(30 + name.len());
        put32(&mut h, 0x0403_4b50);
        put16(&mut h, VERSION);
        put16(&mut h, FLAGS);
        put16(&mut h, 0); // stored
        put16(&mut h, 0); // time
        put16(&mut h, DOS_DATE);
        put32(&mut h, crc);
        put32(&mut h, size);
        put32(&mut h, size);
        put16(&mut h, name.len() as u16);
        put16(&mut h, 0); // extra
        h.extend_from_slice(name.as_bytes());
        self.send(h).await?;
        self.send(data).await?;
        self.entries.push(Central {
            name: name.to_string(),
            crc,
            size,
            offset,
        });
        Ok(())
    }

    /// Writes the central directory and the end record.
    pub async fn finish(mut self) -> Result<(), ZipError> {
        let start = u32::try_from(self.offset).map_err(|_| ZipError::TooLarge)?;
        let mut d = Vec::new();
        for e in &self.entries {
            put32(&mut d, 0x0201_4b50);
            put16(&mut d, VERSION); // made by
            put16(&mut d, VERSION); // needed
            put16(&mut d, FLAGS);
            put16(&mut d, 0);
            put16(&mut d, 0);
            put16(&mut d, DOS_DATE);
            put32(&mut d, e.crc);
            put32(&mut d, e.size);
            put32(&mut d, e.size);
            put16(&mut d, e.name.len() as u16);
            put16(&mut d, 0); // extra
            put16(&mut d, 0); // comment
            put16(&mut d, 0); // disk
            put16(&mut d, 0); // internal attributes
            put32(&mut d, 0); // external attributes
            put32(&mut d, e.offset);
            d.extend_from_slice(e.name.as_bytes());
        }
        let size = d.len() as u32;
        let count = u16::try_from(self.entries.len()).map_err(|_| ZipError::TooLarge)?;
        put32(&mut d, 0x0605_4b50);
        put16(&mut d, 0);
        put16(&mut d, 0);
        put16(&mut d, count);
        put16(&mut d, count);
        put32(&mut d, size);
        put32(&mut d, start);
        put16(&mut d, 0); // comment
        self.send(d).await
    }
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

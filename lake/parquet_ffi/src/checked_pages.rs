//! Column readers whose pages are checked before the crate decodes them.
//!
//! The crate sizes a dictionary from its page header's value count, not
//! from the bytes that follow: a hostile object claiming 2^31 values in a
//! page of a few bytes made it allocate gigabytes before any check
//! (found by fuzz/parquet_fuzz.c).  Here a dictionary page may claim no
//! more values than its bytes can hold at the smallest width of its
//! column's physical type; BOOLEAN (one bit a value) is no column of ours.

use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::column::reader::{get_column_reader, ColumnReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};

/// The fewest bytes one PLAIN value of a physical type takes.
fn min_width(t: PhysicalType) -> usize {
    match t {
        PhysicalType::BOOLEAN => 0,
        PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 4,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 8,
        PhysicalType::INT96 => 12,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => 1,
    }
}

struct CheckedPages {
    inner: Box<dyn PageReader>,
    width: usize,
}

impl CheckedPages {
    fn check(&self, page: Page) -> Result<Page> {
        if let Page::DictionaryPage {
            ref buf,
            num_values,
            ..
        } = page
        {
            let claimed = num_values as usize;
            if self.width > 0 && claimed > buf.len() / self.width {
                return Err(ParquetError::General(format!(
                    "a dictionary page claims {claimed} values in {} bytes",
                    buf.len()
                )));
            }
        }
        Ok(page)
    }
}

impl Iterator for CheckedPages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for CheckedPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        match self.inner.get_next_page()? {
            Some(page) => self.check(page).map(Some),
            None => Ok(None),
        }
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.inner.skip_next_page()
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        self.inner.at_record_boundary()
    }
}

/// Column i of a row group, its pages checked as above.
pub(crate) fn column_reader(g: &dyn RowGroupReader, i: usize) -> Result<ColumnReader> {
    let descr = g.metadata().column(i).column_descr_ptr();
    let width = min_width(descr.physical_type());
    let inner = g.get_column_page_reader(i)?;
    Ok(get_column_reader(
        descr,
        Box::new(CheckedPages { inner, width }),
    ))
}

/* ------------------------------------------------- page sizes, before any read */

/// Reads of the Thrift compact protocol, bounded by the bytes at hand: just
/// enough to learn a page header's sizes and its length, skipping every
/// other field.  The crate decodes the pages; this only looks first.
struct Compact<'a> {
    buf: &'a [u8],
    at: usize,
}

/// Nesting deeper than a page header's (structs in structs) is refused.
const MAX_DEPTH: usize = 16;

impl Compact<'_> {
    fn byte(&mut self) -> std::result::Result<u8, String> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or("a page header runs past its column chunk")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a page header holds a varint of more than 64 bits".into())
    }

    fn zigzag(&mut self) -> std::result::Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip_bytes(&mut self, n: u64) -> std::result::Result<(), String> {
        let left = (self.buf.len() - self.at) as u64;
        if n > left {
            return Err("a page header runs past its column chunk".into());
        }
        self.at += n as usize;
        Ok(())
    }

    /// Skips a value of compact type `t`; `in_list`: a bool is a byte of its own.
    fn skip(&mut self, t: u8, in_list: bool, depth: usize) -> std::result::Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("a page header nests too deep".into());
        }
        match t {
            1 | 2 if !in_list => Ok(()),
            1 | 2 | 3 => self.skip_bytes(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.skip_bytes(8),
            8 => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.skip_items(n, &[h & 0x0f], depth)
            }
            11 => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                self.skip_items(n, &[kv >> 4, kv & 0x0f], depth)
            }
            12 => self.skip_struct(depth + 1),
            _ => Err(format!("a page header holds a field of unknown type {t}")),
        }
    }

    /// n items, each one value of each of `types`: every item takes a byte
    /// at least, so a count beyond the bytes left ends in an error.
    fn skip_items(
        &mut self,
        n: u64,
        types: &[u8],
        depth: usize,
    ) -> std::result::Result<(), String> {
        for _ in 0..n {
            let before = self.at;
            for &t in types {
                self.skip(t, true, depth + 1)?;
            }
            if self.at == before {
                return Err("a page header holds an empty list item".into());
            }
        }
        Ok(())
    }

    /// The fields of a struct, up to its stop byte: each (id, type) to `f`,
    /// which reads the value or leaves it to be skipped (false).
    fn fields(
        &mut self,
        depth: usize,
        f: &mut dyn FnMut(&mut Self, i16, u8) -> std::result::Result<bool, String>,
    ) -> std::result::Result<(), String> {
        let mut id: i16 = 0;
        loop {
            let b = self.byte()?;
            if b == 0 {
                return Ok(());
            }
            let t = b & 0x0f;
            id = match b >> 4 {
                0 => {
                    i16::try_from(self.zigzag()?).map_err(|_| "a page header field id overflows")?
                }
                delta => id
                    .checked_add(i16::from(delta))
                    .ok_or("a page header field id overflows")?,
            };
            if !f(self, id, t)? {
                self.skip(t, false, depth)?;
            }
        }
    }

    fn skip_struct(&mut self, depth: usize) -> std::result::Result<(), String> {
        self.fields(depth, &mut |_, _, _| Ok(false))
    }
}

/// A page header's sizes (fields 2 and 3 of parquet.thrift's PageHeader)
/// and the header's own length.
fn page_header(buf: &[u8]) -> std::result::Result<(i64, i64, usize), String> {
    let mut c = Compact { buf, at: 0 };
    let (mut uncompressed, mut compressed) = (-1i64, -1i64);
    c.fields(0, &mut |c, id, t| match (id, t) {
        (2, 5) => c.zigzag().map(|v| {
            uncompressed = v;
            true
        }),
        (3, 5) => c.zigzag().map(|v| {
            compressed = v;
            true
        }),
        _ => Ok(false),
    })?;
    if uncompressed < 0 || compressed < 0 {
        return Err("a page header lacks its sizes".into());
    }
    Ok((uncompressed, compressed, c.at))
}

/// Every page of every column chunk, walked as the crate will read them:
/// none may inflate to more than `max_page` bytes, nor run past its chunk.
/// The crate sizes a page's buffer from its header and inflates into it,
/// so a page of a few kB could otherwise claim and fill gigabytes.
fn check_page_sizes(
    data: &[u8],
    file: &SerializedFileReader<Bytes>,
    max_page: usize,
) -> std::result::Result<(), String> {
    for g in file.metadata().row_groups() {
        for col in g.columns() {
            let start = col
                .dictionary_page_offset()
                .unwrap_or(col.data_page_offset());
            let len = col.compressed_size();
            if start < 0 || len < 0 {
                return Err("a column chunk has a negative offset or size".into());
            }
            let (start, len) = (start as u64, len as u64);
            let end = start
                .checked_add(len)
                .filter(|&e| e <= data.len() as u64)
                .ok_or("a column chunk runs past the object")?;
            let chunk = &data[start as usize..end as usize];
            let mut at = 0usize;
            while at < chunk.len() {
                let (uncompressed, compressed, header) = page_header(&chunk[at..])?;
                if uncompressed as u64 > max_page as u64 {
                    return Err(format!(
                        "a page of column {} would inflate to {uncompressed} bytes, more than the {max_page} allowed",
                        col.column_path()
                    ));
                }
                at = at
                    .checked_add(header)
                    .and_then(|a| a.checked_add(compressed as usize))
                    .filter(|&a| a <= chunk.len())
                    .ok_or("a page runs past its column chunk")?;
            }
        }
    }
    Ok(())
}

/// A reader over a copy of an object whose pages inflate to at most
/// `max_page` bytes each.
pub(crate) fn open(
    data: &[u8],
    max_page: usize,
) -> std::result::Result<SerializedFileReader<Bytes>, String> {
    let bytes = Bytes::copy_from_slice(data);
    let file = SerializedFileReader::new(bytes).map_err(|e| e.to_string())?;
    check_page_sizes(data, &file, max_page)?;
    Ok(file)
}

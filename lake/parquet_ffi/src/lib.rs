//! ss_parquet_ffi: the C ABI through which stocks_stream writes and reads the
//! Parquet objects of its archive pipelines, over the Apache Arrow project's
//! `parquet` crate (see ../README.md and ../include/ss_parquet_ffi.h).
//!
//! Every `extern "C"` entry runs its body inside `catch_unwind`: a Rust panic
//! never crosses into PostgreSQL.  It becomes an error code (-1) and a message
//! in the caller's buffer, which the C side turns into an ereport.  Nothing
//! here aborts the process.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::reader::{get_typed_column_reader, ColumnReader};
use parquet::column::writer::ColumnWriterImpl;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::{
    SerializedColumnWriter, SerializedFileWriter, SerializedRowGroupWriter,
};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::Type;

mod checked_pages;
mod silver;

/// The schema of an archive object: one row per Kafka message.
const SCHEMA: &str = "
message stocks_stream_bronze {
  REQUIRED BYTE_ARRAY topic (STRING);
  REQUIRED INT32 partition;
  REQUIRED INT64 offset;
  OPTIONAL INT64 timestamp (TIMESTAMP(MILLIS,true));
  OPTIONAL BYTE_ARRAY key;
  OPTIONAL BYTE_ARRAY headers (JSON);
  REQUIRED BYTE_ARRAY value (JSON);
}";

/// Leaf columns in schema order; a reader accepts an object whose leaves
/// are exactly these (names and physical types).
const COLUMNS: [&str; 7] = [
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "headers",
    "value",
];

pub(crate) const ZSTD_LEVEL: i32 = 3;

/// One message, as the C side passes it in and gets it back.  Pointers are
/// borrowed: on the way in for the duration of the call, on the way out
/// until the next call on the same reader or its free.
#[repr(C)]
pub struct SsPqRow {
    pub topic: *const u8,
    pub topic_len: usize,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub has_timestamp: i32,
    pub key: *const u8,
    pub key_len: usize,
    pub has_key: i32,
    pub headers: *const u8,
    pub headers_len: usize,
    pub has_headers: i32,
    pub value: *const u8,
    pub value_len: usize,
}

/// Every column but topic and partition, for a batch of rows.
#[derive(Default)]
struct Rows {
    offsets: Vec<i64>,
    timestamps: Vec<i64>,
    timestamp_defs: Vec<i16>,
    keys: Vec<ByteArray>,
    key_defs: Vec<i16>,
    headers: Vec<ByteArray>,
    header_defs: Vec<i16>,
    values: Vec<ByteArray>,
}

/// Byte strings of one column, back to back in one buffer: a row costs its
/// bytes and four more, not an allocation of its own and a 32-byte handle
/// (malloc's rounding and the handles made a batch half again its size).
#[derive(Default)]
struct ByteColumn {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl ByteColumn {
    fn push(&mut self, b: &[u8]) -> Res<()> {
        let end = u32::try_from(self.data.len() + b.len())
            .map_err(|_| "a batch column passed 4 GB".to_string())?;
        self.data.extend_from_slice(b);
        self.ends.push(end);
        Ok(())
    }
}

/// A writer's messages until the flush: every column but topic and
/// partition, which the writer's rows share.
#[derive(Default)]
struct Buffered {
    offsets: Vec<i64>,
    timestamps: Vec<i64>,
    timestamp_defs: Vec<i16>,
    keys: ByteColumn,
    key_defs: Vec<i16>,
    headers: ByteColumn,
    header_defs: Vec<i16>,
    values: ByteColumn,
}

pub struct SsPqWriter {
    topic: ByteArray,
    partition: i32,
    rows: Buffered,
}

/// One row group, decoded.
struct Columns {
    topics: Vec<ByteArray>,
    partitions: Vec<i32>,
    rows: Rows,
}

pub struct SsPqReader {
    file: SerializedFileReader<Bytes>,
    next_group: usize,
    group: Option<Columns>,
    row: usize,
    /// where the row handed out last reads the optional columns
    ts_at: usize,
    key_at: usize,
    header_at: usize,
}

pub(crate) type Res<T> = Result<T, String>;

pub(crate) fn set_error(err: *mut c_char, errlen: usize, msg: &str) {
    if err.is_null() || errlen == 0 {
        return;
    }
    let bytes = msg.as_bytes();
    let n = bytes.len().min(errlen - 1);
    // SAFETY: the caller passes a buffer of errlen bytes
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), err as *mut u8, n);
        *err.add(n) = 0;
    }
}

/// Run `f`, turning an error or a panic into -1 and a message.
pub(crate) fn guarded<F: FnOnce() -> Res<i32>>(err: *mut c_char, errlen: usize, f: F) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(rc)) => rc,
        Ok(Err(msg)) => {
            set_error(err, errlen, &msg);
            -1
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_error(err, errlen, &format!("parquet library panicked: {what}"));
            -1
        }
    }
}

pub(crate) unsafe fn slice<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(p, len)
    }
}

pub(crate) fn perr(e: parquet::errors::ParquetError) -> String {
    e.to_string()
}

/* ------------------------------------------------------------------ writer */

/// A writer for the messages of one topic partition; NULL on error.
#[no_mangle]
pub extern "C" fn ss_pq_writer_new(
    topic: *const u8,
    topic_len: usize,
    partition: i32,
    err: *mut c_char,
    errlen: usize,
) -> *mut SsPqWriter {
    let mut out: *mut SsPqWriter = std::ptr::null_mut();
    guarded(err, errlen, || {
        let topic = unsafe { slice(topic, topic_len) }.to_vec();
        out = Box::into_raw(Box::new(SsPqWriter {
            topic: ByteArray::from(topic),
            partition,
            rows: Buffered::default(),
        }));
        Ok(0)
    });
    out
}

/// Buffer one message (its topic and partition are the writer's).
#[no_mangle]
pub extern "C" fn ss_pq_writer_add(
    w: *mut SsPqWriter,
    row: *const SsPqRow,
    err: *mut c_char,
    errlen: usize,
) -> i32 {
    guarded(err, errlen, || {
        let w = unsafe { w.as_mut() }.ok_or("no writer")?;
        let r = unsafe { row.as_ref() }.ok_or("no row")?;
        let rows = &mut w.rows;
        rows.offsets.push(r.offset);
        if r.has_timestamp != 0 {
            rows.timestamps.push(r.timestamp_ms);
        }
        rows.timestamp_defs.push((r.has_timestamp != 0) as i16);
        if r.has_key != 0 {
            rows.keys.push(unsafe { slice(r.key, r.key_len) })?;
        }
        rows.key_defs.push((r.has_key != 0) as i16);
        if r.has_headers != 0 {
            rows.headers
                .push(unsafe { slice(r.headers, r.headers_len) })?;
        }
        rows.header_defs.push((r.has_headers != 0) as i16);
        rows.values.push(unsafe { slice(r.value, r.value_len) })?;
        Ok(0)
    })
}

/// Rows handed to the column writer at a time.  A multiple of the crate's
/// write batch size (1024), so pages and encodings come out exactly as from
/// one call with every row, while a call's handles stay small.
const CHUNK: usize = 8 * 1024;

/// Write a byte column (with `defs`, an optional one) CHUNK rows at a time,
/// as slices of its one buffer (no copy), and free it.
fn write_bytes(
    c: &mut ColumnWriterImpl<'_, ByteArrayType>,
    col: ByteColumn,
    defs: Option<Vec<i16>>,
) -> Res<()> {
    let data = Bytes::from(col.data);
    let rows = defs.as_ref().map_or(col.ends.len(), |d| d.len());
    let (mut at, mut start) = (0usize, 0usize);
    let mut chunk: Vec<ByteArray> = Vec::with_capacity(CHUNK.min(col.ends.len()));
    for from in (0..rows).step_by(CHUNK) {
        let to = (from + CHUNK).min(rows);
        let d = defs.as_ref().map(|d| &d[from..to]);
        let n = d.map_or(to - from, |d| d.iter().filter(|v| **v > 0).count());
        chunk.clear();
        for end in col.ends.get(at..at + n).ok_or("a column lost values")? {
            let end = *end as usize;
            chunk.push(ByteArray::from(data.slice(start..end)));
            start = end;
        }
        at += n;
        c.write_batch(&chunk, d, None).map_err(perr)?;
    }
    Ok(())
}

/// Write the same value to every one of `rows` rows, CHUNK at a time.
fn write_repeated<T: DataType>(c: &mut ColumnWriterImpl<'_, T>, v: &T::T, rows: usize) -> Res<()> {
    let chunk = vec![v.clone(); CHUNK.min(rows)];
    for from in (0..rows).step_by(CHUNK) {
        let n = (rows - from).min(CHUNK);
        c.write_batch(&chunk[..n], None, None).map_err(perr)?;
    }
    Ok(())
}

/// The row group's next column, written by `write` and closed.  `write`
/// takes what it writes by value, so a column's buffers are freed as soon
/// as it is written.
fn with_column<W: std::io::Write + Send>(
    rg: &mut SerializedRowGroupWriter<'_, W>,
    write: impl FnOnce(&mut SerializedColumnWriter<'_>) -> Res<()>,
) -> Res<()> {
    let mut c = rg
        .next_column()
        .map_err(perr)?
        .ok_or("the archive schema has fewer columns than are written")?;
    write(&mut c)?;
    c.close().map_err(perr)
}

/// Encode the rows as one object, freeing each column once it is written.
fn encode(topic: &ByteArray, partition: i32, rows: Buffered) -> Res<Vec<u8>> {
    let schema = Arc::new(parse_message_type(SCHEMA).map_err(perr)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(ZSTD_LEVEL).map_err(perr)?,
            ))
            .set_created_by("stocks_stream (parquet-rs 60.2.0)".to_string())
            .build(),
    );
    let n = rows.offsets.len();
    let Buffered {
        offsets,
        timestamps,
        timestamp_defs,
        keys,
        key_defs,
        headers,
        header_defs,
        values,
    } = rows;
    let mut out = Vec::new();
    let mut fw = SerializedFileWriter::new(&mut out, schema, props).map_err(perr)?;
    // one row group per object: every column written whole, once, in
    // COLUMNS' order
    let mut rg = fw.next_row_group().map_err(perr)?;
    with_column(&mut rg, |c| {
        write_repeated(c.typed::<ByteArrayType>(), topic, n)
    })?;
    with_column(&mut rg, |c| {
        write_repeated(c.typed::<Int32Type>(), &partition, n)
    })?;
    with_column(&mut rg, move |c| {
        c.typed::<Int64Type>()
            .write_batch(&offsets, None, None)
            .map(drop)
            .map_err(perr)
    })?;
    with_column(&mut rg, move |c| {
        c.typed::<Int64Type>()
            .write_batch(&timestamps, Some(&timestamp_defs), None)
            .map(drop)
            .map_err(perr)
    })?;
    with_column(&mut rg, move |c| {
        write_bytes(c.typed::<ByteArrayType>(), keys, Some(key_defs))
    })?;
    with_column(&mut rg, move |c| {
        write_bytes(c.typed::<ByteArrayType>(), headers, Some(header_defs))
    })?;
    with_column(&mut rg, move |c| {
        write_bytes(c.typed::<ByteArrayType>(), values, None)
    })?;
    rg.close().map_err(perr)?;
    fw.close().map_err(perr)?;
    Ok(out)
}

/// Encode the buffered messages as one Parquet object (one row group, ZSTD).
/// On success *data and *len hold the object, to be freed with
/// ss_pq_buffer_free.  The writer gives its messages up as they are encoded,
/// success or not: it is empty after (free it).
#[no_mangle]
pub extern "C" fn ss_pq_writer_finish(
    w: *mut SsPqWriter,
    data: *mut *mut u8,
    len: *mut usize,
    err: *mut c_char,
    errlen: usize,
) -> i32 {
    guarded(err, errlen, || {
        let w = unsafe { w.as_mut() }.ok_or("no writer")?;
        if data.is_null() || len.is_null() {
            return Err("no output pointers".into());
        }
        let out = encode(&w.topic, w.partition, std::mem::take(&mut w.rows))?.into_boxed_slice();
        unsafe {
            *len = out.len();
            *data = Box::into_raw(out) as *mut u8;
        }
        Ok(0)
    })
}

#[no_mangle]
pub extern "C" fn ss_pq_buffer_free(data: *mut u8, len: usize) {
    let _ = catch_unwind(|| {
        if !data.is_null() {
            // SAFETY: data and len come from ss_pq_writer_finish
            unsafe {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)));
            }
        }
    });
}

#[no_mangle]
pub extern "C" fn ss_pq_writer_free(w: *mut SsPqWriter) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !w.is_null() {
            unsafe { drop(Box::from_raw(w)) };
        }
    }));
}

/* ------------------------------------------------------------------ reader */

fn check_schema(file: &SerializedFileReader<Bytes>) -> Res<()> {
    let expected = parse_message_type(SCHEMA).map_err(perr)?;
    let fields = match &expected {
        Type::GroupType { fields, .. } => fields.clone(),
        _ => return Err("internal: schema is not a group".into()),
    };
    let descr = file.metadata().file_metadata().schema_descr();
    if descr.num_columns() != COLUMNS.len() {
        return Err(format!(
            "has {} columns, not the {} of an archive object",
            descr.num_columns(),
            COLUMNS.len()
        ));
    }
    for (i, want) in fields.iter().enumerate() {
        let col = descr.column(i);
        if col.name() != COLUMNS[i]
            || col.path().parts().len() != 1
            || col.physical_type() != want.get_physical_type()
            || col.max_rep_level() != 0
            || (col.max_def_level() > 0) != want.is_optional()
        {
            return Err(format!(
                "column {} is \"{}\", not the archive object's \"{}\" of its type",
                i + 1,
                col.path().string(),
                COLUMNS[i]
            ));
        }
    }
    Ok(())
}

/// A reader over a Parquet object held in memory (copied: the caller may
/// free its buffer) whose pages inflate to max_page bytes at most; NULL on
/// error.
#[no_mangle]
pub extern "C" fn ss_pq_reader_open(
    data: *const u8,
    len: usize,
    max_page: usize,
    err: *mut c_char,
    errlen: usize,
) -> *mut SsPqReader {
    let mut out: *mut SsPqReader = std::ptr::null_mut();
    guarded(err, errlen, || {
        let file = checked_pages::open(unsafe { slice(data, len) }, max_page)?;
        check_schema(&file)?;
        out = Box::into_raw(Box::new(SsPqReader {
            file,
            next_group: 0,
            group: None,
            row: 0,
            ts_at: 0,
            key_at: 0,
            header_at: 0,
        }));
        Ok(0)
    });
    out
}

/// Rows in the object, from its footer; -1 on error.
#[no_mangle]
pub extern "C" fn ss_pq_reader_rows(r: *const SsPqReader) -> i64 {
    match catch_unwind(AssertUnwindSafe(|| {
        unsafe { r.as_ref() }.map(|r| r.file.metadata().file_metadata().num_rows())
    })) {
        Ok(Some(n)) => n,
        _ => -1,
    }
}

/// A column chunk's `rows` values (and with `defs`, its definition levels).
/// The schema was checked at open, so the column's physical type is T's.
fn read_column<T: DataType>(
    c: ColumnReader,
    rows: usize,
    defs: Option<&mut Vec<i16>>,
) -> Res<Vec<T::T>> {
    let mut r = get_typed_column_reader::<T>(c);
    let mut vals = Vec::new();
    let (n, _, _) = r.read_records(rows, defs, None, &mut vals).map_err(perr)?;
    if n != rows {
        return Err(format!("a column holds {n} of its row group's {rows} rows"));
    }
    Ok(vals)
}

fn check_defs(defs: &[i16], vals: usize, rows: usize) -> Res<()> {
    let present = defs.iter().filter(|d| **d > 0).count();
    if defs.len() != rows || present != vals {
        return Err("an optional column's levels do not match its values".into());
    }
    Ok(())
}

fn load_group(r: &mut SsPqReader) -> Res<bool> {
    let groups = r.file.num_row_groups();
    while r.next_group < groups {
        let g = r.file.get_row_group(r.next_group).map_err(perr)?;
        r.next_group += 1;
        let rows = usize::try_from(g.metadata().num_rows())
            .map_err(|_| "a row group has a negative row count".to_string())?;
        if rows == 0 {
            continue;
        }
        let mut c = Columns {
            topics: read_column::<ByteArrayType>(
                checked_pages::column_reader(&*g, 0).map_err(perr)?,
                rows,
                None,
            )?,
            partitions: read_column::<Int32Type>(
                checked_pages::column_reader(&*g, 1).map_err(perr)?,
                rows,
                None,
            )?,
            rows: Rows::default(),
        };
        c.rows.offsets = read_column::<Int64Type>(
            checked_pages::column_reader(&*g, 2).map_err(perr)?,
            rows,
            None,
        )?;
        c.rows.values = read_column::<ByteArrayType>(
            checked_pages::column_reader(&*g, 6).map_err(perr)?,
            rows,
            None,
        )?;
        c.rows.timestamps = read_column::<Int64Type>(
            checked_pages::column_reader(&*g, 3).map_err(perr)?,
            rows,
            Some(&mut c.rows.timestamp_defs),
        )?;
        c.rows.keys = read_column::<ByteArrayType>(
            checked_pages::column_reader(&*g, 4).map_err(perr)?,
            rows,
            Some(&mut c.rows.key_defs),
        )?;
        c.rows.headers = read_column::<ByteArrayType>(
            checked_pages::column_reader(&*g, 5).map_err(perr)?,
            rows,
            Some(&mut c.rows.header_defs),
        )?;
        check_defs(&c.rows.timestamp_defs, c.rows.timestamps.len(), rows)?;
        check_defs(&c.rows.key_defs, c.rows.keys.len(), rows)?;
        check_defs(&c.rows.header_defs, c.rows.headers.len(), rows)?;
        r.group = Some(c);
        r.row = 0;
        r.ts_at = 0;
        r.key_at = 0;
        r.header_at = 0;
        return Ok(true);
    }
    r.group = None;
    Ok(false)
}

/// The next row into *row: 1, or 0 at the end, or -1 on error.  One row
/// group is decoded at a time.
#[no_mangle]
pub extern "C" fn ss_pq_reader_next(
    r: *mut SsPqReader,
    row: *mut SsPqRow,
    err: *mut c_char,
    errlen: usize,
) -> i32 {
    guarded(err, errlen, || {
        let r = unsafe { r.as_mut() }.ok_or("no reader")?;
        let out = unsafe { row.as_mut() }.ok_or("no row")?;
        let exhausted = match &r.group {
            None => true,
            Some(c) => r.row >= c.rows.offsets.len(),
        };
        if exhausted && !load_group(r)? {
            return Ok(0);
        }
        let i = r.row;
        let c = r.group.as_ref().ok_or("no row group")?;
        let bytes = |b: &ByteArray| (b.data().as_ptr(), b.len());
        (out.topic, out.topic_len) = bytes(&c.topics[i]);
        out.partition = c.partitions[i];
        out.offset = c.rows.offsets[i];
        out.has_timestamp = (c.rows.timestamp_defs[i] > 0) as i32;
        out.timestamp_ms = 0;
        if out.has_timestamp != 0 {
            out.timestamp_ms = c.rows.timestamps[r.ts_at];
            r.ts_at += 1;
        }
        out.has_key = (c.rows.key_defs[i] > 0) as i32;
        (out.key, out.key_len) = (std::ptr::null(), 0);
        if out.has_key != 0 {
            (out.key, out.key_len) = bytes(&c.rows.keys[r.key_at]);
            r.key_at += 1;
        }
        out.has_headers = (c.rows.header_defs[i] > 0) as i32;
        (out.headers, out.headers_len) = (std::ptr::null(), 0);
        if out.has_headers != 0 {
            (out.headers, out.headers_len) = bytes(&c.rows.headers[r.header_at]);
            r.header_at += 1;
        }
        (out.value, out.value_len) = bytes(&c.rows.values[i]);
        r.row += 1;
        Ok(1)
    })
}

#[no_mangle]
pub extern "C" fn ss_pq_reader_free(r: *mut SsPqReader) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !r.is_null() {
            unsafe { drop(Box::from_raw(r)) };
        }
    }));
}

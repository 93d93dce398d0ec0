//! Silver rows (the quotes and trades tables) as typed Parquet objects: the
//! writer the tiering of old days uses, and the reader its verification
//! reads the objects back with (../README.md, "Silver objects").
//!
//! Rows come in and go out as arrays of cells, one per column in the
//! table's column order; a column's kind says which field of a cell holds
//! its value.  Every `extern "C"` entry runs under `guarded` (lib.rs): no
//! panic crosses into PostgreSQL.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::column::reader::get_typed_column_reader;
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{ColumnDescriptor, ColumnPath};

use crate::{guarded, perr, slice, Res, ZSTD_LEVEL};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    I32,
    I64,
    /// INT64 TIMESTAMP(MICROS, UTC): microseconds since 1970
    Ts,
    F64,
    /// LIST of optional UTF8 strings (text[])
    StrList,
}

struct Col {
    name: &'static str,
    kind: Kind,
    optional: bool,
}

const fn col(name: &'static str, kind: Kind, optional: bool) -> Col {
    Col {
        name,
        kind,
        optional,
    }
}

/// stocks_stream.trades, in its column order
const TRADES: [Col; 9] = [
    col("symbol", Kind::Str, false),
    col("trade_time", Kind::Ts, false),
    col("price", Kind::F64, false),
    col("volume", Kind::F64, false),
    col("conditions", Kind::StrList, false),
    col("source_topic", Kind::Str, false),
    col("source_partition", Kind::I32, false),
    col("source_offset", Kind::I64, false),
    col("loaded_at", Kind::Ts, false),
];

/// stocks_stream.quotes, in its column order
const QUOTES: [Col; 14] = [
    col("symbol", Kind::Str, false),
    col("quote_time", Kind::Ts, false),
    col("price", Kind::F64, false),
    col("change", Kind::F64, true),
    col("change_pct", Kind::F64, true),
    col("day_high", Kind::F64, false),
    col("day_low", Kind::F64, false),
    col("day_open", Kind::F64, false),
    col("prev_close", Kind::F64, false),
    col("fetched_at", Kind::Ts, true),
    col("source_topic", Kind::Str, false),
    col("source_partition", Kind::I32, false),
    col("source_offset", Kind::I64, false),
    col("loaded_at", Kind::Ts, false),
];

fn table_columns(table: i32) -> Res<(&'static str, &'static [Col])> {
    match table {
        1 => Ok(("trades", &TRADES)),
        2 => Ok(("quotes", &QUOTES)),
        _ => Err(format!("no silver table {table}")),
    }
}

fn schema_text(name: &str, cols: &[Col]) -> String {
    let mut s = format!("message stocks_stream_{name} {{\n");
    for c in cols {
        let rep = if c.optional { "OPTIONAL" } else { "REQUIRED" };
        let line = match c.kind {
            Kind::Str => format!("{rep} BYTE_ARRAY {} (STRING);", c.name),
            Kind::I32 => format!("{rep} INT32 {};", c.name),
            Kind::I64 => format!("{rep} INT64 {};", c.name),
            Kind::Ts => format!("{rep} INT64 {} (TIMESTAMP(MICROS,true));", c.name),
            Kind::F64 => format!("{rep} DOUBLE {};", c.name),
            Kind::StrList => format!(
                "{rep} group {} (LIST) {{ REPEATED group list {{ OPTIONAL BYTE_ARRAY element (STRING); }} }}",
                c.name
            ),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s.push('}');
    s
}

/// One string of a list cell; borrowed like the cell.
#[repr(C)]
pub struct SsPqStr {
    pub ptr: *const u8,
    pub len: usize,
    pub is_null: i32,
}

/// One value of a silver row.  Which field holds it is the column's kind:
/// i64 for INT32, INT64 and timestamps (microseconds since 1970, UTC),
/// f64 for doubles, ptr/len for strings, items/nitems for lists.
#[repr(C)]
pub struct SsPqCell {
    pub is_null: i32,
    pub i64: i64,
    pub f64: f64,
    pub ptr: *const u8,
    pub len: usize,
    pub items: *const SsPqStr,
    pub nitems: usize,
}

/// One column's values (and levels) of the row group being built or read.
enum Buf {
    Bytes(Vec<ByteArray>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

struct ColBuf {
    vals: Buf,
    defs: Vec<i16>,
    reps: Vec<i16>,
    /// strings met lately: a repeated one is shared, not copied again
    recent: Vec<ByteArray>,
}

/// How many distinct strings a column remembers (symbols come sorted; a
/// topic or a trade condition takes a handful of values).
const RECENT: usize = 8;

/// A string onto b's values: shared with an equal one met lately, or
/// copied (and remembered, the oldest forgotten).
fn push_str(b: &mut ColBuf, s: &[u8]) -> Res<()> {
    let Buf::Bytes(v) = &mut b.vals else {
        return Err("internal: not a string column".into());
    };
    if let Some(hit) = b.recent.iter().find(|r| r.data() == s) {
        v.push(hit.clone());
        return Ok(());
    }
    let a = ByteArray::from(s.to_vec());
    if b.recent.len() >= RECENT {
        b.recent.remove(0);
    }
    b.recent.push(a.clone());
    v.push(a);
    Ok(())
}

fn new_buf(kind: Kind) -> ColBuf {
    let vals = match kind {
        Kind::Str | Kind::StrList => Buf::Bytes(Vec::new()),
        Kind::I32 => Buf::I32(Vec::new()),
        Kind::I64 | Kind::Ts => Buf::I64(Vec::new()),
        Kind::F64 => Buf::F64(Vec::new()),
    };
    ColBuf {
        vals,
        defs: Vec::new(),
        reps: Vec::new(),
        recent: Vec::new(),
    }
}

pub struct SsPqSilverWriter {
    cols: &'static [Col],
    file: Option<SerializedFileWriter<Vec<u8>>>,
    bufs: Vec<ColBuf>,
    rows: usize,
    group_rows: usize,
}

fn push_cell(c: &Col, b: &mut ColBuf, cell: &SsPqCell) -> Res<()> {
    if c.kind == Kind::StrList {
        let items: &[SsPqStr] = if cell.items.is_null() || cell.nitems == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(cell.items, cell.nitems) }
        };
        if cell.is_null != 0 {
            return Err(format!("{} is NULL, and the column is required", c.name));
        }
        if items.is_empty() {
            b.defs.push(0);
            b.reps.push(0);
        }
        for (i, it) in items.iter().enumerate() {
            b.reps.push(if i == 0 { 0 } else { 1 });
            if it.is_null != 0 {
                b.defs.push(1);
            } else {
                b.defs.push(2);
                push_str(b, unsafe { slice(it.ptr, it.len) })?;
            }
        }
        return Ok(());
    }
    if cell.is_null != 0 {
        if !c.optional {
            return Err(format!("{} is NULL, and the column is required", c.name));
        }
        b.defs.push(0);
        return Ok(());
    }
    if c.optional {
        b.defs.push(1);
    }
    match &mut b.vals {
        Buf::Bytes(_) => push_str(b, unsafe { slice(cell.ptr, cell.len) })?,
        Buf::I32(v) => v.push(
            i32::try_from(cell.i64).map_err(|_| format!("{} is out of INT32's range", c.name))?,
        ),
        Buf::I64(v) => v.push(cell.i64),
        Buf::F64(v) => v.push(cell.f64),
    }
    Ok(())
}

fn flush_group(w: &mut SsPqSilverWriter) -> Res<()> {
    if w.rows == 0 {
        return Ok(());
    }
    let file = w.file.as_mut().ok_or("the writer is finished")?;
    let mut rg = file.next_row_group().map_err(perr)?;
    let mut i = 0;
    while let Some(mut cw) = rg.next_column().map_err(perr)? {
        let c = w
            .cols
            .get(i)
            .ok_or("internal: more columns than the table")?;
        let b = &w.bufs[i];
        let defs = if c.optional || c.kind == Kind::StrList {
            Some(&b.defs[..])
        } else {
            None
        };
        let reps = if c.kind == Kind::StrList {
            Some(&b.reps[..])
        } else {
            None
        };
        match &b.vals {
            Buf::Bytes(v) => cw.typed::<ByteArrayType>().write_batch(v, defs, reps),
            Buf::I32(v) => cw.typed::<Int32Type>().write_batch(v, defs, reps),
            Buf::I64(v) => cw.typed::<Int64Type>().write_batch(v, defs, reps),
            Buf::F64(v) => cw.typed::<DoubleType>().write_batch(v, defs, reps),
        }
        .map_err(perr)?;
        cw.close().map_err(perr)?;
        i += 1;
    }
    rg.close().map_err(perr)?;
    for (b, c) in w.bufs.iter_mut().zip(w.cols.iter()) {
        *b = new_buf(c.kind);
    }
    w.rows = 0;
    Ok(())
}

/// ZSTD; the 64-bit integers and timestamps (times in order within a
/// symbol, offsets climbing, load times repeating) delta-encoded, not
/// hashed into a dictionary that overflows on a row group of distinct
/// values; the other columns the crate's default (a dictionary while it is
/// small: symbols, topics, prices).
fn writer_properties(cols: &[Col]) -> Res<WriterProperties> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).map_err(perr)?,
        ))
        .set_created_by("stocks_stream (parquet-rs 60.2.0)".to_string());
    for c in cols
        .iter()
        .filter(|c| matches!(c.kind, Kind::I64 | Kind::Ts))
    {
        let path = ColumnPath::from(c.name);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
    }
    Ok(b.build())
}

/// A writer of one object of a silver table (1 trades, 2 quotes), whose
/// row groups hold group_rows rows; NULL on error.
#[no_mangle]
pub extern "C" fn ss_pq_silver_writer_new(
    table: i32,
    group_rows: usize,
    err: *mut c_char,
    errlen: usize,
) -> *mut SsPqSilverWriter {
    let mut out: *mut SsPqSilverWriter = std::ptr::null_mut();
    guarded(err, errlen, || {
        let (name, cols) = table_columns(table)?;
        if group_rows == 0 {
            return Err("a row group must hold at least one row".into());
        }
        let schema = Arc::new(parse_message_type(&schema_text(name, cols)).map_err(perr)?);
        let props = Arc::new(writer_properties(cols)?);
        let file = SerializedFileWriter::new(Vec::new(), schema, props).map_err(perr)?;
        out = Box::into_raw(Box::new(SsPqSilverWriter {
            cols,
            file: Some(file),
            bufs: cols.iter().map(|c| new_buf(c.kind)).collect(),
            rows: 0,
            group_rows,
        }));
        Ok(0)
    });
    out
}

/// Copy one row in (ncells cells, the table's columns in order); a full
/// row group is encoded at once.  0 or -1.
#[no_mangle]
pub extern "C" fn ss_pq_silver_writer_add(
    w: *mut SsPqSilverWriter,
    cells: *const SsPqCell,
    ncells: usize,
    err: *mut c_char,
    errlen: usize,
) -> i32 {
    guarded(err, errlen, || {
        let w = unsafe { w.as_mut() }.ok_or("no writer")?;
        if cells.is_null() || ncells != w.cols.len() {
            return Err(format!("a row has {ncells} cells, not {}", w.cols.len()));
        }
        let cells = unsafe { std::slice::from_raw_parts(cells, ncells) };
        for (i, c) in w.cols.iter().enumerate() {
            push_cell(c, &mut w.bufs[i], &cells[i])?;
        }
        w.rows += 1;
        if w.rows >= w.group_rows {
            flush_group(w)?;
        }
        Ok(0)
    })
}

/// Bytes of the object so far (its encoded row groups); -1 on error.
#[no_mangle]
pub extern "C" fn ss_pq_silver_writer_bytes(w: *const SsPqSilverWriter) -> i64 {
    match catch_unwind(AssertUnwindSafe(|| {
        unsafe { w.as_ref() }
            .and_then(|w| w.file.as_ref())
            .map(|f| f.bytes_written() as i64)
    })) {
        Ok(Some(n)) => n,
        _ => -1,
    }
}

/// Encode the rows not yet in a row group and close the object: *data and
/// *len hold it, to be freed with ss_pq_buffer_free.  The writer takes no
/// more rows (free it).  0 or -1.
#[no_mangle]
pub extern "C" fn ss_pq_silver_writer_finish(
    w: *mut SsPqSilverWriter,
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
        flush_group(w)?;
        let file = w.file.take().ok_or("the writer is finished")?;
        let out = file.into_inner().map_err(perr)?.into_boxed_slice();
        unsafe {
            *len = out.len();
            *data = Box::into_raw(out) as *mut u8;
        }
        Ok(0)
    })
}

#[no_mangle]
pub extern "C" fn ss_pq_silver_writer_free(w: *mut SsPqSilverWriter) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !w.is_null() {
            unsafe { drop(Box::from_raw(w)) };
        }
    }));
}

/* ------------------------------------------------------------------ reader */

pub struct SsPqSilverReader {
    cols: &'static [Col],
    file: SerializedFileReader<Bytes>,
    next_group: usize,
    bufs: Vec<ColBuf>,
    group_rows: usize,
    row: usize,
    /// per column: the next value and the next level to read
    val_at: Vec<usize>,
    lvl_at: Vec<usize>,
    /// the list items of the row handed out last
    items: Vec<Vec<SsPqStr>>,
}

fn expected_leaf(c: &Col) -> (parquet::basic::Type, i16, i16) {
    use parquet::basic::Type as P;
    let phys = match c.kind {
        Kind::Str | Kind::StrList => P::BYTE_ARRAY,
        Kind::I32 => P::INT32,
        Kind::I64 | Kind::Ts => P::INT64,
        Kind::F64 => P::DOUBLE,
    };
    match c.kind {
        Kind::StrList => (phys, 2, 1),
        _ => (phys, c.optional as i16, 0),
    }
}

fn check_leaf(i: usize, c: &Col, d: &ColumnDescriptor) -> Res<()> {
    let (phys, def, rep) = expected_leaf(c);
    let top = d.path().parts().first().cloned().unwrap_or_default();
    if top != c.name
        || d.physical_type() != phys
        || d.max_def_level() != def
        || d.max_rep_level() != rep
    {
        return Err(format!(
            "column {} is \"{}\", not the silver column \"{}\" of its type",
            i + 1,
            d.path().string(),
            c.name
        ));
    }
    Ok(())
}

fn read_leaf<T: DataType>(
    g: &dyn parquet::file::reader::RowGroupReader,
    i: usize,
    rows: usize,
    levels: bool,
    reps: bool,
    b: &mut ColBuf,
) -> Res<Vec<T::T>> {
    let mut r =
        get_typed_column_reader::<T>(crate::checked_pages::column_reader(g, i).map_err(perr)?);
    let mut vals = Vec::new();
    let (n, _, _) = r
        .read_records(
            rows,
            if levels { Some(&mut b.defs) } else { None },
            if reps { Some(&mut b.reps) } else { None },
            &mut vals,
        )
        .map_err(perr)?;
    if n != rows {
        return Err(format!("a column holds {n} of its row group's {rows} rows"));
    }
    Ok(vals)
}

fn load_group(r: &mut SsPqSilverReader) -> Res<bool> {
    while r.next_group < r.file.num_row_groups() {
        let g = r.file.get_row_group(r.next_group).map_err(perr)?;
        r.next_group += 1;
        let rows = usize::try_from(g.metadata().num_rows())
            .map_err(|_| "a row group has a negative row count".to_string())?;
        if rows == 0 {
            continue;
        }
        let mut bufs = Vec::with_capacity(r.cols.len());
        for (i, c) in r.cols.iter().enumerate() {
            let mut b = new_buf(c.kind);
            let levels = c.optional || c.kind == Kind::StrList;
            let reps = c.kind == Kind::StrList;
            b.vals = match c.kind {
                Kind::Str | Kind::StrList => Buf::Bytes(read_leaf::<ByteArrayType>(
                    &*g, i, rows, levels, reps, &mut b,
                )?),
                Kind::I32 => Buf::I32(read_leaf::<Int32Type>(&*g, i, rows, levels, reps, &mut b)?),
                Kind::I64 | Kind::Ts => {
                    Buf::I64(read_leaf::<Int64Type>(&*g, i, rows, levels, reps, &mut b)?)
                }
                Kind::F64 => Buf::F64(read_leaf::<DoubleType>(&*g, i, rows, levels, reps, &mut b)?),
            };
            if levels && b.defs.len() < rows {
                return Err(format!("column {} has fewer levels than rows", c.name));
            }
            if reps && b.reps.len() != b.defs.len() {
                return Err(format!("column {}'s levels do not pair up", c.name));
            }
            bufs.push(b);
        }
        r.bufs = bufs;
        r.group_rows = rows;
        r.row = 0;
        r.val_at = vec![0; r.cols.len()];
        r.lvl_at = vec![0; r.cols.len()];
        return Ok(true);
    }
    Ok(false)
}

fn bad(c: &Col) -> String {
    format!("column {}'s levels do not match its values", c.name)
}

/// The next row's cell of column i.
fn next_cell(r: &mut SsPqSilverReader, i: usize, out: &mut SsPqCell) -> Res<()> {
    let c = &r.cols[i];
    let b = &r.bufs[i];
    *out = SsPqCell {
        is_null: 0,
        i64: 0,
        f64: 0.0,
        ptr: std::ptr::null(),
        len: 0,
        items: std::ptr::null(),
        nitems: 0,
    };
    if c.kind == Kind::StrList {
        let Buf::Bytes(v) = &b.vals else {
            return Err(bad(c));
        };
        let items = &mut r.items[i];
        items.clear();
        let mut l = r.lvl_at[i];
        let first_def = *b.defs.get(l).ok_or_else(|| bad(c))?;
        if *b.reps.get(l).ok_or_else(|| bad(c))? != 0 {
            return Err(bad(c));
        }
        if first_def == 0 {
            l += 1;
        } else {
            loop {
                let def = *b.defs.get(l).ok_or_else(|| bad(c))?;
                if def >= 2 {
                    let s = v.get(r.val_at[i]).ok_or_else(|| bad(c))?;
                    r.val_at[i] += 1;
                    items.push(SsPqStr {
                        ptr: s.data().as_ptr(),
                        len: s.len(),
                        is_null: 0,
                    });
                } else if def == 1 {
                    items.push(SsPqStr {
                        ptr: std::ptr::null(),
                        len: 0,
                        is_null: 1,
                    });
                } else {
                    return Err(bad(c));
                }
                l += 1;
                if b.reps.get(l) != Some(&1) {
                    break;
                }
            }
        }
        r.lvl_at[i] = l;
        out.items = items.as_ptr();
        out.nitems = items.len();
        return Ok(());
    }
    if c.optional {
        let def = *b.defs.get(r.lvl_at[i]).ok_or_else(|| bad(c))?;
        r.lvl_at[i] += 1;
        if def == 0 {
            out.is_null = 1;
            return Ok(());
        }
    }
    let at = r.val_at[i];
    r.val_at[i] += 1;
    match &b.vals {
        Buf::Bytes(v) => {
            let s = v.get(at).ok_or_else(|| bad(c))?;
            out.ptr = s.data().as_ptr();
            out.len = s.len();
        }
        Buf::I32(v) => out.i64 = *v.get(at).ok_or_else(|| bad(c))? as i64,
        Buf::I64(v) => out.i64 = *v.get(at).ok_or_else(|| bad(c))?,
        Buf::F64(v) => out.f64 = *v.get(at).ok_or_else(|| bad(c))?,
    }
    Ok(())
}

/// A reader over a copy of a silver object of the table (1 trades, 2
/// quotes) whose pages inflate to max_page bytes at most; NULL on error
/// (not Parquet, not the table's columns, a page too large).
#[no_mangle]
pub extern "C" fn ss_pq_silver_reader_open(
    table: i32,
    data: *const u8,
    len: usize,
    max_page: usize,
    err: *mut c_char,
    errlen: usize,
) -> *mut SsPqSilverReader {
    let mut out: *mut SsPqSilverReader = std::ptr::null_mut();
    guarded(err, errlen, || {
        let (_, cols) = table_columns(table)?;
        let file = crate::checked_pages::open(unsafe { slice(data, len) }, max_page)?;
        let descr = file.metadata().file_metadata().schema_descr();
        if descr.num_columns() != cols.len() {
            return Err(format!(
                "has {} columns, not the {} of the table",
                descr.num_columns(),
                cols.len()
            ));
        }
        for (i, c) in cols.iter().enumerate() {
            check_leaf(i, c, &descr.column(i))?;
        }
        out = Box::into_raw(Box::new(SsPqSilverReader {
            cols,
            file,
            next_group: 0,
            bufs: Vec::new(),
            group_rows: 0,
            row: 0,
            val_at: Vec::new(),
            lvl_at: Vec::new(),
            items: cols.iter().map(|_| Vec::new()).collect(),
        }));
        Ok(0)
    });
    out
}

/// Rows in the object, from its footer; -1 on error.
#[no_mangle]
pub extern "C" fn ss_pq_silver_reader_rows(r: *const SsPqSilverReader) -> i64 {
    match catch_unwind(AssertUnwindSafe(|| {
        unsafe { r.as_ref() }.map(|r| r.file.metadata().file_metadata().num_rows())
    })) {
        Ok(Some(n)) => n,
        _ => -1,
    }
}

/// The next row into cells[0..ncells] (valid until the next call or the
/// free): 1, 0 at the end, -1 on error.  One row group is decoded at a time.
#[no_mangle]
pub extern "C" fn ss_pq_silver_reader_next(
    r: *mut SsPqSilverReader,
    cells: *mut SsPqCell,
    ncells: usize,
    err: *mut c_char,
    errlen: usize,
) -> i32 {
    guarded(err, errlen, || {
        let r = unsafe { r.as_mut() }.ok_or("no reader")?;
        if cells.is_null() || ncells != r.cols.len() {
            return Err(format!(
                "{ncells} cells asked for, the table has {}",
                r.cols.len()
            ));
        }
        if r.row >= r.group_rows && !load_group(r)? {
            return Ok(0);
        }
        let cells = unsafe { std::slice::from_raw_parts_mut(cells, ncells) };
        for (i, cell) in cells.iter_mut().enumerate() {
            next_cell(r, i, cell)?;
        }
        r.row += 1;
        Ok(1)
    })
}

#[no_mangle]
pub extern "C" fn ss_pq_silver_reader_free(r: *mut SsPqSilverReader) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !r.is_null() {
            unsafe { drop(Box::from_raw(r)) };
        }
    }));
}

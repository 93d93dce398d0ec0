//! Column readers whose pages are checked before the crate decodes them.
//!
//! The crate sizes a dictionary from its page header's value count, not
//! from the bytes that follow: a hostile object claiming 2^31 values in a
//! page of a few bytes made it allocate gigabytes before any check
//! (found by fuzz/parquet_fuzz.c).  Here a dictionary page may claim no
//! more values than its bytes can hold at the smallest width of its
//! column's physical type; BOOLEAN (one bit a value) is no column of ours.

use parquet::basic::Type as PhysicalType;
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::column::reader::{get_column_reader, ColumnReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::reader::RowGroupReader;

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

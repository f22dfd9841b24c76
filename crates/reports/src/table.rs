//! A report table: what the PDF typesets and what its CSV holds, from the same cells. Numbers
//! are rounded here and nowhere else ([`Cell::text`]), so the PDF and the CSV always agree.

/// One value of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text as is.
    Text(String),
    /// A count.
    Int(i64),
    /// A measure, shown with `decimals` decimals; `None` is a value that does not exist (shown empty).
    Num(Option<f64>, u8),
}

impl Cell {
    /// The text of a cell: the one place numbers are rounded (half away from zero at the given
    /// decimals; a rounded zero never shows a minus sign; non-finite values show empty).
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(None, _) => String::new(),
            Cell::Num(Some(v), _) if !v.is_finite() => String::new(),
            Cell::Num(Some(v), decimals) => {
                let scale = 10f64.powi(i32::from(*decimals));
                let rounded = (v * scale).round() / scale;
                let rounded = if rounded == 0.0 { 0.0 } else { rounded };
                format!("{rounded:.prec$}", prec = usize::from(*decimals))
            }
        }
    }

    /// Whether the cell is a number (right-aligned in the PDF).
    pub fn is_number(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<u64> for Cell {
    fn from(n: u64) -> Self {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

/// A measure with `decimals` decimals.
pub fn num(v: f64, decimals: u8) -> Cell {
    Cell::Num(Some(v), decimals)
}

/// A measure that may not exist.
pub fn opt(v: Option<f64>, decimals: u8) -> Cell {
    Cell::Num(v, decimals)
}

/// A table of the report, also written as `{file}.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// CSV file stem, e.g. `5.2-exposure-by-product`.
    pub file: String,
    /// Caption in the PDF.
    pub title: String,
    /// Column headers.
    pub columns: Vec<String>,
    /// Rows, in the order the builder sorted them on their total keys.
    pub rows: Vec<Vec<Cell>>,
    /// What the reader needs to read it right (unit, what is counted), under the table.
    pub note: String,
}

impl Table {
    /// An empty table.
    pub fn new(file: &str, title: &str, columns: &[&str], note: &str) -> Self {
        Self {
            file: file.to_owned(),
            title: title.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            note: note.to_owned(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{}: row width", self.file);
        self.rows.push(row);
    }

    /// The CSV bytes: a header row, then every row, `\n` line ends, UTF-8.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        w.write_record(&self.columns)?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::text))?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_half_away_from_zero_and_never_show_minus_zero() {
        assert_eq!(num(0.125, 2).text(), "0.13");
        assert_eq!(num(-0.0004, 3).text(), "0.000");
        assert_eq!(num(12.0, 0).text(), "12");
        assert_eq!(opt(None, 2).text(), "");
        assert_eq!(num(f64::NAN, 2).text(), "");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut t = Table::new("t", "T", &["name", "n"], "");
        t.push(vec!["a, \"b\"".into(), Cell::Int(3)]);
        let text = String::from_utf8(t.csv().expect("writes")).expect("utf8");
        assert_eq!(text, "name,n\n\"a, \"\"b\"\"\",3\n");
    }
}

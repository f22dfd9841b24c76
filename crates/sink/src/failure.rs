//! Which ClickHouse errors are worth retrying and which refuse the rows themselves.
//!
//! A *transient* failure (the server is down, overloaded, read-only, a table is missing while a
//! migration runs, a timeout) is retried with the same rows until it passes: consumption pauses
//! meanwhile, nothing is skipped. A *rejection* is the server refusing the content of the rows
//! (a value the column type cannot hold, a failed check): retrying the same rows cannot help, so
//! the batch is split to find the refused rows, which go to the dead-letter topic with the
//! server's error. When in doubt an error is transient: a stalled sink raises an alarm, a wrongly
//! dead-lettered event is a missed harm.

use clickhouse::error::Error;

/// How the sink handles a failed insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retry the same rows with backoff.
    Transient(String),
    /// The server refused the rows' content; isolate and dead-letter them.
    Rejected(String),
    /// The rows span more partitions than one insert may touch (`max_partitions_per_insert_block`,
    /// 100 by default since ClickHouse 19): insert them in smaller parts, none is refused.
    TooManyPartitions(String),
}

/// ClickHouse exception codes that refuse the data itself (ErrorCodes.cpp): parse and type
/// errors, values out of a type's range, unknown enum elements, array sizes of a `Nested`
/// structure that differ, `throwIf` and `CHECK` constraints.
const CONTENT_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    190, // SIZES_OF_ARRAYS_DOESNT_MATCH
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    469, // VIOLATED_CONSTRAINT
    691, // UNKNOWN_ELEMENT_OF_ENUM
];

/// Classifies an error of an INSERT.
pub fn classify(error: &Error) -> Failure {
    let message = error.to_string();
    match error {
        Error::BadResponse(text) => match exception_code(text) {
            Some(252) if text.contains("Too many partitions for single INSERT block") => {
                Failure::TooManyPartitions(message)
            }
            Some(code) if is_content_code(code, text) => Failure::Rejected(message),
            _ => Failure::Transient(message),
        },
        // The client could not serialise a row: the same row fails every time.
        Error::Custom(_) | Error::SequenceMustHaveLength | Error::InvalidUtf8Encoding(_) => {
            Failure::Rejected(message)
        }
        _ => Failure::Transient(message),
    }
}

/// Whether exception `code` (with its text) refuses content. ClickHouse before 21.x reports an
/// unknown enum value as a LOGICAL_ERROR (49) "Unexpected value N for type Enum8(...)".
fn is_content_code(code: u32, text: &str) -> bool {
    CONTENT_CODES.contains(&code)
        || (code == 49 && text.contains("Unexpected value") && text.contains("for type Enum"))
}

/// The exception code in a ClickHouse error response: "Code: 49, e.displayText() = ..." (18.x)
/// or "Code: 49. DB::Exception: ..." (current releases).
pub fn exception_code(text: &str) -> Option<u32> {
    let at = text.find("Code: ")? + "Code: ".len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> Failure {
        classify(&Error::BadResponse(text.into()))
    }

    #[test]
    fn codes_are_read_from_both_message_styles() {
        assert_eq!(exception_code("Code: 49, e.displayText() = DB::Exception: x"), Some(49));
        assert_eq!(exception_code("Code: 252. DB::Exception: Too many parts"), Some(252));
        assert_eq!(exception_code("500 Internal Server Error"), None);
    }

    #[test]
    fn refused_content_is_a_rejection() {
        // Verbatim from ClickHouse 18.16 for a RowBinary enum value the column lacks.
        let enum18 = "Code: 49, e.displayText() = DB::Exception: Unexpected value 6 for type Enum8('a' = 1, 'b' = 2), e.what() = DB::Exception";
        assert!(matches!(bad(enum18), Failure::Rejected(_)));
        assert!(matches!(
            bad("Code: 691. DB::Exception: Unknown element 'x' for enum. (UNKNOWN_ELEMENT_OF_ENUM)"),
            Failure::Rejected(_)
        ));
        assert!(matches!(
            bad("Code: 469. DB::Exception: Constraint `c` ... is violated"),
            Failure::Rejected(_)
        ));
        assert!(matches!(classify(&Error::Custom("bad row".into())), Failure::Rejected(_)));
    }

    #[test]
    fn too_many_partitions_is_its_own_failure_and_too_many_parts_is_transient() {
        // As current ClickHouse words it (18.16 has no such limit, so it is not seen here).
        let text = "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting. Large number of partitions is a common misconception. (TOO_MANY_PARTS)";
        assert!(matches!(bad(text), Failure::TooManyPartitions(_)));
        assert!(matches!(bad("Code: 252. DB::Exception: Too many parts (300)."), Failure::Transient(_)));
    }

    #[test]
    fn outages_and_unknowns_are_transient() {
        for text in [
            "Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts",
            "Code: 241. DB::Exception: Memory limit (total) exceeded",
            "Code: 60. DB::Exception: Table pv.doses doesn't exist",
            "Code: 49. DB::Exception: Logical error: something else",
            "Code: 516. DB::Exception: default: Authentication failed",
            "502 Bad Gateway",
        ] {
            assert!(matches!(bad(text), Failure::Transient(_)), "{text}");
        }
        assert!(matches!(classify(&Error::TimedOut), Failure::Transient(_)));
        assert!(matches!(classify(&Error::Network("refused".into())), Failure::Transient(_)));
    }
}

//! Clinic events: the Rust types, their Avro schemas (`schemas/*.avsc`), Avro single-object
//! encoding, the JSON form clinics send, and the validation rules every stage shares.

pub mod canonical;
pub mod codec;
pub mod enriched;
pub mod id;
pub mod json;
pub mod model;
pub mod sample;
pub mod schema;
pub mod time;
pub mod validate;

pub use codec::{CodecError, EventCodec};
pub use enriched::*;
pub use id::EventId;
pub use json::{event_from_json, event_to_json};
pub use model::*;
pub use schema::{AvroRecord, SchemaRegistry, SchemaVersion};
pub use time::{Date, Timestamp};
pub use validate::{FieldError, Limits, validate};

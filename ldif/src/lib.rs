//! RFC 2849 LDIF for dirbroker: a streaming parser ([`LdifReader`]) and a
//! writer ([`LdifWriter`]) over the record model in [`record`].
//!
//! Validation against the schema, journaled import, export and generators
//! build on these and live in later modules.

#![warn(missing_docs)]

pub mod error;
pub mod parse;
pub mod record;
pub mod write;

pub use error::{ErrorKind, LdifError, LdifWarning, WriteError};
pub use parse::{DEFAULT_MAX_RECORD_SIZE, LdifReader, ParseOptions, parse_all};
pub use record::{Attr, ChangeKind, ChangeRecord, Control, Entry, ModOp, ModSpec, Record, RecordType};
pub use write::{LdifWriter, to_bytes};

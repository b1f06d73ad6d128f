//! RFC 2849 LDIF for dirbroker: streaming parser and writer, validation and
//! the import/export engine. Nothing lives here yet; see the open issue.

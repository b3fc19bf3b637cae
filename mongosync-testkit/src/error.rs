//! Server errors as a real `mongod` reports them: a numeric code, its name, a message and
//! the error labels. Every command handler returns [`CommandError`] on failure; the server turns
//! it into an `{ok: 0, code, codeName, errmsg, ...}` reply.

use bson::{Document, doc};

/// The result type of the testkit's command handlers and query engine.
pub type Result<T, E = CommandError> = std::result::Result<T, E>;

/// An error reply of the emulated server.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// The server error code (`code`), e.g. 11000 for DuplicateKey.
    pub code: i32,
    /// The message (`errmsg`).
    pub message: String,
    /// Error labels (`errorLabels`), e.g. `TransientTransactionError`.
    pub labels: Vec<String>,
    /// Extra top-level fields of the error reply (e.g. `keyPattern`, `keyValue`, `errInfo`).
    pub extra: Document,
    /// The labels were set by a fail point and replace the server's own.
    pub labels_forced: bool,
}

impl CommandError {
    /// An error with `code` and `message`; the code name comes from [`code_name`].
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            labels: Vec::new(),
            extra: Document::new(),
            labels_forced: false,
        }
    }

    /// Adds an extra top-level field to the error reply.
    pub fn with_extra(mut self, key: &str, value: impl Into<bson::Bson>) -> Self {
        self.extra.insert(key, value.into());
        self
    }

    /// The error's code name (`codeName`).
    pub fn code_name(&self) -> String {
        code_name(self.code)
    }

    /// 2 BadValue.
    pub fn bad_value(message: impl Into<String>) -> Self {
        Self::new(codes::BAD_VALUE, message)
    }
    /// 9 FailedToParse.
    pub fn failed_to_parse(message: impl Into<String>) -> Self {
        Self::new(codes::FAILED_TO_PARSE, message)
    }
    /// 14 TypeMismatch.
    pub fn type_mismatch(message: impl Into<String>) -> Self {
        Self::new(codes::TYPE_MISMATCH, message)
    }
    /// 26 NamespaceNotFound.
    pub fn namespace_not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NAMESPACE_NOT_FOUND, message)
    }
    /// 72 InvalidOptions.
    pub fn invalid_options(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_OPTIONS, message)
    }
    /// 73 InvalidNamespace.
    pub fn invalid_namespace(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_NAMESPACE, message)
    }
    /// 40415 IDLUnknownField: `BSON field 'cmd.field' is an unknown field.`
    pub fn unknown_field(command: &str, field: &str) -> Self {
        Self::new(
            codes::IDL_UNKNOWN_FIELD,
            format!("BSON field '{command}.{field}' is an unknown field."),
        )
    }
    /// 40414 IDLFailedToParse (missing required field).
    pub fn missing_field(command: &str, field: &str) -> Self {
        Self::new(
            codes::IDL_MISSING_FIELD,
            format!("BSON field '{command}.{field}' is missing but a required field"),
        )
    }
    /// TypeMismatch in the wording of the server's IDL parser.
    pub fn wrong_field_type(command: &str, field: &str, actual: &str, expected: &[&str]) -> Self {
        // The server lists several types in brackets: `expected types '[bool, int]'`.
        let expected = match expected {
            [one] => format!("type '{one}'"),
            many => format!("types '[{}]'", many.join(", ")),
        };
        Self::type_mismatch(format!(
            "BSON field '{command}.{field}' is the wrong type '{actual}', expected {expected}"
        ))
    }

    /// The `{ok: 0, errmsg, code, codeName, ...}` reply body (without cluster time fields).
    pub fn to_document(&self) -> Document {
        let mut d = doc! { "ok": 0.0, "errmsg": self.message.clone(), "code": self.code, "codeName": self.code_name() };
        for (k, v) in &self.extra {
            d.insert(k.clone(), v.clone());
        }
        if !self.labels.is_empty() {
            d.insert("errorLabels", self.labels.clone());
        }
        d
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code_name(), self.code, self.message)
    }
}

impl std::error::Error for CommandError {}

/// The server error codes the testkit uses (from the server's `error_codes.yml`).
#[allow(missing_docs)]
pub mod codes {
    pub const INTERNAL_ERROR: i32 = 1;
    pub const BAD_VALUE: i32 = 2;
    pub const NO_SUCH_KEY: i32 = 4;
    pub const GRAPH_CONTAINS_CYCLE: i32 = 5;
    pub const FAILED_TO_PARSE: i32 = 9;
    pub const UNAUTHORIZED: i32 = 13;
    pub const TYPE_MISMATCH: i32 = 14;
    pub const OVERFLOW: i32 = 15;
    pub const ILLEGAL_OPERATION: i32 = 20;
    pub const EMPTY_ARRAY_OPERATION: i32 = 21;
    pub const NAMESPACE_NOT_FOUND: i32 = 26;
    pub const INDEX_NOT_FOUND: i32 = 27;
    pub const PATH_NOT_VIABLE: i32 = 28;
    pub const CONFLICTING_UPDATE_OPERATORS: i32 = 40;
    pub const CURSOR_NOT_FOUND: i32 = 43;
    pub const NAMESPACE_EXISTS: i32 = 48;
    pub const MAX_TIME_MS_EXPIRED: i32 = 50;
    pub const DOLLAR_PREFIXED_FIELD_NAME: i32 = 52;
    pub const INVALID_ID_FIELD: i32 = 53;
    pub const NOT_SINGLE_VALUE_FIELD: i32 = 54;
    pub const INVALID_DBREF: i32 = 55;
    pub const EMPTY_FIELD_NAME: i32 = 56;
    pub const DOTTED_FIELD_NAME: i32 = 57;
    pub const COMMAND_NOT_FOUND: i32 = 59;
    pub const IMMUTABLE_FIELD: i32 = 66;
    pub const CANNOT_CREATE_INDEX: i32 = 67;
    pub const INDEX_ALREADY_EXISTS: i32 = 68;
    pub const INVALID_OPTIONS: i32 = 72;
    pub const INVALID_NAMESPACE: i32 = 73;
    pub const INDEX_OPTIONS_CONFLICT: i32 = 85;
    pub const INDEX_KEY_SPECS_CONFLICT: i32 = 86;
    pub const OPERATION_FAILED: i32 = 96;
    pub const DOCUMENT_VALIDATION_FAILURE: i32 = 121;
    pub const NOT_A_REPLICA_SET: i32 = 123;
    pub const COMMAND_NOT_SUPPORTED_ON_VIEW: i32 = 166;
    pub const OPTION_NOT_SUPPORTED_ON_VIEW: i32 = 157;
    pub const INVALID_PIPELINE_OPERATOR: i32 = 168;
    pub const VIEW_DEPTH_LIMIT_EXCEEDED: i32 = 165;
    pub const COMMAND_NOT_SUPPORTED: i32 = 115;
    pub const INVALID_INDEX_SPECIFICATION_OPTION: i32 = 197;
    pub const INVALID_UUID: i32 = 207;
    pub const QUERY_FEATURE_NOT_ALLOWED: i32 = 224;
    pub const INVALID_RESUME_TOKEN: i32 = 260;
    pub const CANNOT_CONVERT_INDEX_TO_UNIQUE: i32 = 359;
    pub const COLLECTION_UUID_MISMATCH: i32 = 361;
    pub const UNSUPPORTED_OP_QUERY_COMMAND: i32 = 352;
    pub const BSON_OBJECT_TOO_LARGE: i32 = 10334;
    pub const DUPLICATE_KEY: i32 = 11000;
    pub const IDL_DUPLICATE_FIELD: i32 = 40413;
    pub const IDL_MISSING_FIELD: i32 = 40414;
    pub const IDL_UNKNOWN_FIELD: i32 = 40415;
    pub const UNRECOGNIZED_PIPELINE_STAGE: i32 = 40324;
    pub const INVALID_LENGTH: i32 = 16;
    pub const CAPPED_POSITION_LOST: i32 = 136;
    pub const QUERY_PLAN_KILLED: i32 = 175;
    pub const QUERY_EXCEEDED_MEMORY_LIMIT_NO_DISK_USE_ALLOWED: i32 = 292;
    pub const API_VERSION_ERROR: i32 = 322;
    pub const API_STRICT_ERROR: i32 = 323;
}

/// The `codeName` of a server error code; `"Location<code>"` for codes without a name, as the
/// server reports them.
pub fn code_name(code: i32) -> String {
    let name = match code {
        0 => "OK",
        1 => "InternalError",
        2 => "BadValue",
        4 => "NoSuchKey",
        5 => "GraphContainsCycle",
        6 => "HostUnreachable",
        7 => "HostNotFound",
        9 => "FailedToParse",
        11 => "UserNotFound",
        13 => "Unauthorized",
        14 => "TypeMismatch",
        15 => "Overflow",
        16 => "InvalidLength",
        17 => "ProtocolError",
        18 => "AuthenticationFailed",
        20 => "IllegalOperation",
        21 => "EmptyArrayOperation",
        22 => "InvalidBSON",
        31 => "RoleNotFound",
        24 => "LockTimeout",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        47 => "NoMatchingDocument",
        48 => "NamespaceExists",
        50 => "MaxTimeMSExpired",
        52 => "DollarPrefixedFieldName",
        53 => "InvalidIdField",
        54 => "NotSingleValueField",
        55 => "InvalidDBRef",
        56 => "EmptyFieldName",
        57 => "DottedFieldName",
        59 => "CommandNotFound",
        61 => "ShardKeyNotFound",
        64 => "WriteConcernTimeout",
        66 => "ImmutableField",
        67 => "CannotCreateIndex",
        68 => "IndexAlreadyExists",
        72 => "InvalidOptions",
        73 => "InvalidNamespace",
        79 => "UnknownReplWriteConcern",
        85 => "IndexOptionsConflict",
        86 => "IndexKeySpecsConflict",
        89 => "NetworkTimeout",
        91 => "ShutdownInProgress",
        96 => "OperationFailed",
        100 => "UnsatisfiableWriteConcern",
        112 => "WriteConflict",
        115 => "CommandNotSupported",
        121 => "DocumentValidationFailure",
        123 => "NotAReplicaSet",
        133 => "FailedToSatisfyReadPreference",
        134 => "ReadConcernMajorityNotAvailableYet",
        136 => "CappedPositionLost",
        175 => "QueryPlanKilled",
        292 => "QueryExceededMemoryLimitNoDiskUseAllowed",
        322 => "APIVersionError",
        323 => "APIStrictError",
        324 => "APIDeprecationError",
        150 => "StaleEpoch",
        157 => "OptionNotSupportedOnView",
        166 => "CommandNotSupportedOnView",
        168 => "InvalidPipelineOperator",
        189 => "PrimarySteppedDown",
        165 => "ViewDepthLimitExceeded",
        197 => "InvalidIndexSpecificationOption",
        207 => "InvalidUUID",
        216 => "ElectionInProgress",
        224 => "QueryFeatureNotAllowed",
        234 => "RetryChangeStream",
        237 => "CursorKilled",
        251 => "NoSuchTransaction",
        256 => "TransactionCommitted",
        260 => "InvalidResumeToken",
        262 => "ExceededTimeLimit",
        263 => "OperationNotSupportedInTransaction",
        280 => "ChangeStreamFatalError",
        286 => "ChangeStreamHistoryLost",
        334 => "MechanismUnavailable",
        352 => "UnsupportedOpQueryCommand",
        359 => "CannotConvertIndexToUnique",
        361 => "CollectionUUIDMismatch",
        371 => "UserWritesBlocked",
        9001 => "SocketException",
        10107 => "NotWritablePrimary",
        10334 => "BSONObjectTooLarge",
        11000 => "DuplicateKey",
        11600 => "InterruptedAtShutdown",
        11601 => "Interrupted",
        11602 => "InterruptedDueToReplStateChange",
        13435 => "NotPrimaryNoSecondaryOk",
        13436 => "NotPrimaryOrSecondary",
        _ => return format!("Location{code}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_has_code_name_and_extra_fields() {
        let e = CommandError::new(codes::DUPLICATE_KEY, "E11000 duplicate key")
            .with_extra("keyValue", doc! {"_id": 1});
        let d = e.to_document();
        assert_eq!(d.get_str("codeName").unwrap(), "DuplicateKey");
        assert_eq!(d.get_i32("code").unwrap(), 11000);
        assert!(d.get_document("keyValue").is_ok());
    }
}

//! API errors in AWS's shape: an exception name (`__type`), a message, and an HTTP status.

use std::fmt;

/// The exception names CloudWatch Logs returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ResourceNotFound,
    ResourceAlreadyExists,
    InvalidParameter,
    LimitExceeded,
    OperationAborted,
    ServiceUnavailable,
    Throttling,
    Validation,
    MalformedQuery,
    InvalidOperation,
    UnknownOperation,
    SerializationException,
    MissingAction,
    TooManyTags,
    AccessDenied,
}

impl ErrorKind {
    /// The `__type` string clients match on.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceAlreadyExists => "ResourceAlreadyExistsException",
            ErrorKind::InvalidParameter => "InvalidParameterException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::OperationAborted => "OperationAbortedException",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::MalformedQuery => "MalformedQueryException",
            ErrorKind::InvalidOperation => "InvalidOperationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::SerializationException => "SerializationException",
            ErrorKind::MissingAction => "MissingAction",
            ErrorKind::TooManyTags => "TooManyTagsException",
            ErrorKind::AccessDenied => "AccessDeniedException",
        }
    }

    /// The kind a `__type` names (the part after a `#`, if any), for errors another server sent.
    pub fn from_type_name(name: &str) -> Option<ErrorKind> {
        const ALL: [ErrorKind; 15] = [
            ErrorKind::ResourceNotFound,
            ErrorKind::ResourceAlreadyExists,
            ErrorKind::InvalidParameter,
            ErrorKind::LimitExceeded,
            ErrorKind::OperationAborted,
            ErrorKind::ServiceUnavailable,
            ErrorKind::Throttling,
            ErrorKind::Validation,
            ErrorKind::MalformedQuery,
            ErrorKind::InvalidOperation,
            ErrorKind::UnknownOperation,
            ErrorKind::SerializationException,
            ErrorKind::MissingAction,
            ErrorKind::TooManyTags,
            ErrorKind::AccessDenied,
        ];
        let name = name.rsplit('#').next().unwrap_or(name);
        ALL.into_iter().find(|k| k.type_name() == name)
    }

    /// HTTP status: 400 for client errors, 500/503 for faults.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::ServiceUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// Where in a query the error is (0-based character offsets, start and end), reported as
    /// MalformedQueryException's `queryCompileError`.
    pub location: Option<(usize, usize)>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            location: None,
        }
    }
    /// A MalformedQueryException at characters `start..end` of the query.
    pub fn malformed_at(message: impl Into<String>, start: usize, end: usize) -> Self {
        ApiError {
            location: Some((start, end)),
            ..Self::new(ErrorKind::MalformedQuery, message)
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn group_not_found() -> Self {
        Self::new(
            ErrorKind::ResourceNotFound,
            "The specified log group does not exist.",
        )
    }
    pub fn stream_not_found() -> Self {
        Self::new(
            ErrorKind::ResourceNotFound,
            "The specified log stream does not exist.",
        )
    }
    pub fn already_exists() -> Self {
        Self::new(
            ErrorKind::ResourceAlreadyExists,
            "The specified resource already exists.",
        )
    }
    pub fn bad_token() -> Self {
        Self::invalid("The specified nextToken is invalid.")
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ServiceUnavailable, message)
    }
    /// AWS's wording for a failed member constraint (the value quoted whole, as AWS does).
    pub fn constraint(value: &str, param: &str, constraint: &str) -> Self {
        Self::invalid(format!(
            "1 validation error detected: Value '{value}' at '{param}' failed to satisfy constraint: Member must {constraint}"
        ))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for ApiError {}

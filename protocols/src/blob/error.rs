//! Azure Blob error responses: the HTTP status, the `x-ms-error-code` header and the
//! `<Error><Code>…</Code><Message>…</Message></Error>` body that every failed request gets
//! (the body is left out on HEAD, the header never is).

use std::fmt;

use http::StatusCode;

/// One Azure Blob error, ready to be rendered as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobError {
    /// HTTP status.
    pub status: StatusCode,
    /// Azure error code (`x-ms-error-code`, `<Code>`).
    pub code: &'static str,
    /// Human-readable message (`<Message>`).
    pub message: String,
    /// Extra detail elements (`<AuthenticationErrorDetail>` and the like), already named.
    pub detail: Option<(&'static str, String)>,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for BlobError {}

impl BlobError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        BlobError {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// Adds a detail element to the XML body.
    pub fn with_detail(mut self, element: &'static str, text: impl Into<String>) -> Self {
        self.detail = Some((element, text.into()));
        self
    }

    /// The XML body Azure sends with this error, with the request id in the message as Azure does.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>");
        s.push_str(self.code);
        s.push_str("</Code><Message>");
        crate::blob::xml::escape_into(&mut s, &self.message);
        s.push_str("\nRequestId:");
        crate::blob::xml::escape_into(&mut s, request_id);
        s.push_str("</Message>");
        if let Some((element, text)) = &self.detail {
            s.push('<');
            s.push_str(element);
            s.push('>');
            crate::blob::xml::escape_into(&mut s, text);
            s.push_str("</");
            s.push_str(element);
            s.push('>');
        }
        s.push_str("</Error>");
        s
    }

    /// 403 AuthenticationFailed (bad or missing signature, SAS outside its time window).
    pub fn authentication_failed(detail: impl Into<String>) -> Self {
        BlobError::new(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        )
        .with_detail("AuthenticationErrorDetail", detail)
    }

    /// 403 AuthorizationPermissionMismatch (the SAS lacks the permission the operation needs).
    pub fn permission_mismatch() -> Self {
        BlobError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
    }

    /// 403 AuthorizationResourceTypeMismatch (the SAS does not cover this kind of resource).
    pub fn resource_type_mismatch() -> Self {
        BlobError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationResourceTypeMismatch",
            "This request is not authorized to perform this operation using this resource type.",
        )
    }

    /// 403 AuthorizationFailure (the SAS names another resource, or anonymous access is off).
    pub fn authorization_failure() -> Self {
        BlobError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailure",
            "This request is not authorized to perform this operation.",
        )
    }

    /// 404 ResourceNotFound (anonymous request on a private resource, as Azure answers it).
    pub fn resource_not_found() -> Self {
        BlobError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The specified resource does not exist.",
        )
    }

    /// 404 ContainerNotFound.
    pub fn container_not_found() -> Self {
        BlobError::new(
            StatusCode::NOT_FOUND,
            "ContainerNotFound",
            "The specified container does not exist.",
        )
    }

    /// 404 BlobNotFound.
    pub fn blob_not_found() -> Self {
        BlobError::new(
            StatusCode::NOT_FOUND,
            "BlobNotFound",
            "The specified blob does not exist.",
        )
    }

    /// 400 InvalidQueryParameterValue for `name`.
    pub fn invalid_query(name: &str, value: &str, reason: &str) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidQueryParameterValue",
            format!("Value for one of the query parameters specified in the request URI is invalid. {name}={value}: {reason}"),
        )
        .with_detail("QueryParameterName", name.to_string())
    }

    /// 400 InvalidHeaderValue for `name`.
    pub fn invalid_header(name: &str, reason: &str) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidHeaderValue",
            format!("The value for one of the HTTP headers is not in the correct format. {name}: {reason}"),
        )
        .with_detail("HeaderName", name.to_string())
    }

    /// 400 MissingRequiredHeader for `name`.
    pub fn missing_header(name: &str) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredHeader",
            format!("An HTTP header that's mandatory for this request is not specified: {name}"),
        )
        .with_detail("HeaderName", name.to_string())
    }

    /// 400 InvalidXmlDocument (a request body that is not the XML the operation takes).
    pub fn invalid_xml(reason: impl Into<String>) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidXmlDocument",
            format!(
                "XML specified is not syntactically valid. {}",
                reason.into()
            ),
        )
    }

    /// 400 InvalidInput.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        BlobError::new(StatusCode::BAD_REQUEST, "InvalidInput", reason)
    }

    /// 400 InvalidResourceName (container or blob name breaks the naming rules).
    pub fn invalid_resource_name(reason: impl Into<String>) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidResourceName",
            format!(
                "The specified resource name contains invalid characters. {}",
                reason.into()
            ),
        )
    }

    /// 400 Md5Mismatch: the body's MD5 differs from `Content-MD5`.
    pub fn md5_mismatch() -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "Md5Mismatch",
            "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        )
    }

    /// 400 Crc64Mismatch: the body's CRC-64 differs from `x-ms-content-crc64`.
    pub fn crc64_mismatch() -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "Crc64Mismatch",
            "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.",
        )
    }

    /// 416 InvalidRange.
    pub fn invalid_range() -> Self {
        BlobError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        )
    }

    /// 412 ConditionNotMet.
    pub fn condition_not_met() -> Self {
        BlobError::new(
            StatusCode::PRECONDITION_FAILED,
            "ConditionNotMet",
            "The condition specified using HTTP conditional header(s) is not met.",
        )
    }

    /// 409 BlobAlreadyExists: a write that must not overwrite (`If-None-Match: *`) found a blob.
    pub fn blob_already_exists() -> Self {
        BlobError::new(
            StatusCode::CONFLICT,
            "BlobAlreadyExists",
            "The specified blob already exists.",
        )
    }

    /// 409 ContainerAlreadyExists.
    pub fn container_already_exists() -> Self {
        BlobError::new(
            StatusCode::CONFLICT,
            "ContainerAlreadyExists",
            "The specified container already exists.",
        )
    }

    /// 400 InvalidBlockList: a listed block id is not staged or committed.
    pub fn invalid_block_list() -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBlockList",
            "The specified block list is invalid.",
        )
    }

    /// 400 InvalidBlockId.
    pub fn invalid_block_id(reason: &str) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBlockId",
            format!(
                "The specified block ID is invalid. The block ID must be Base64-encoded. {reason}"
            ),
        )
    }

    /// 413 RequestBodyTooLarge.
    pub fn body_too_large(limit: u64) -> Self {
        BlobError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is too large and exceeds the maximum permissible limit of {limit} bytes."),
        )
    }

    /// 400 UnsupportedHttpVerb / 405 for a verb the resource does not take.
    pub fn unsupported_verb(verb: &str) -> Self {
        BlobError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedHttpVerb",
            format!("The resource doesn't support specified Http Verb {verb}."),
        )
    }

    /// 400 UnsupportedQueryParameter / the operation named by `comp` is not offered.
    pub fn unsupported_operation(what: &str) -> Self {
        BlobError::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedQueryParameter",
            format!(
                "One of the query parameters specified in the request URI is not supported: {what}"
            ),
        )
    }

    /// 500 InternalError (storage failure; never a panic).
    pub fn internal(reason: impl Into<String>) -> Self {
        BlobError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!(
                "The server encountered an internal error. {}",
                reason.into()
            ),
        )
    }

    /// 503 ServerBusy.
    pub fn server_busy(reason: impl Into<String>) -> Self {
        BlobError::new(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", reason)
    }
}

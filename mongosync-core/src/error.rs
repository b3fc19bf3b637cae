//! The one error type of the engine.

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a full sentence, with the cause kept in `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option given to the engine is not allowed.
    #[error("invalid option `{field}`: {reason}")]
    InvalidOptions {
        /// The option's name as the user wrote it.
        field: String,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// A cluster could not be reached or answered with an error.
    #[error("the {cluster} cluster could not be used: {message}")]
    Connection {
        /// Which cluster: "source" or "destination".
        cluster: &'static str,
        /// What failed.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<mongodb::error::Error>,
    },
}

impl Error {
    /// Whether the error is an invalid option.
    pub fn is_invalid_options(&self) -> bool {
        matches!(self, Error::InvalidOptions { .. })
    }

    /// Whether the error is a failure to reach or use a cluster.
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_option_names_the_field() {
        let e = Error::InvalidOptions {
            field: "buildIndexes".into(),
            reason: "allowed: always, never".into(),
        };
        assert!(e.is_invalid_options());
        assert_eq!(
            e.to_string(),
            "invalid option `buildIndexes`: allowed: always, never"
        );
    }
}

//! Passwords never reach any output: connection strings are printed with their password
//! replaced, and every log line and error text passes through [`redact_text`].

use std::sync::LazyLock;

use regex::Regex;

/// `scheme://user:password@` inside any text.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@").expect("a valid regex")
});

/// What replaces a password.
pub const REDACTED: &str = "<redacted>";

/// A connection string with its password (if any) replaced.
pub fn redact(uri: &str) -> String {
    redact_text(uri)
}

/// Any text with the password of every connection string in it replaced.
pub fn redact_text(text: &str) -> String {
    USERINFO
        .replace_all(text, format!("${{1}}{REDACTED}@"))
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_replaced_everywhere() {
        assert_eq!(
            redact("mongodb://admin:p%40ss@h:1,h:2/?replicaSet=rs0"),
            "mongodb://admin:<redacted>@h:1,h:2/?replicaSet=rs0"
        );
        assert_eq!(
            redact_text("failed: mongodb+srv://u:x@c.example.net and mongodb://v:y@d"),
            "failed: mongodb+srv://u:<redacted>@c.example.net and mongodb://v:<redacted>@d"
        );
        assert_eq!(redact("mongodb://h:27017/"), "mongodb://h:27017/");
        assert_eq!(redact("mongodb://user@h/"), "mongodb://user@h/");
    }
}

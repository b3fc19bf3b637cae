//! SCRAM (RFC 5802, RFC 7677) as a MongoDB server runs it: stored credentials per user and
//! mechanism, and the server side of one conversation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use sha2::Digest;

/// The two SCRAM mechanisms MongoDB supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM-SHA-1: the password is first digested as `md5("user:mongo:pwd")` (hex).
    Sha1,
    /// SCRAM-SHA-256: the password is SASLprepped.
    Sha256,
}

impl Mechanism {
    /// Parses the `mechanism` field of `saslStart`.
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// The mechanism's name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// The server's default iteration counts (`scramIterationCount`,
    /// `scramSHA256IterationCount`).
    pub fn default_iterations(self) -> u32 {
        match self {
            Mechanism::Sha1 => 10_000,
            Mechanism::Sha256 => 15_000,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut m = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha256 => {
                let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut out = vec![0u8; 20];
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// The password as the mechanism hashes it: SCRAM-SHA-1 uses MongoDB's legacy digest,
    /// SCRAM-SHA-256 the SASLprepped password. `None` if SASLprep rejects it.
    pub fn prepare_password(self, user: &str, password: &str) -> Option<String> {
        match self {
            Mechanism::Sha1 => {
                let digest = md5::Md5::digest(format!("{user}:mongo:{password}").as_bytes());
                Some(hex(&digest))
            }
            Mechanism::Sha256 => stringprep::saslprep(password).ok().map(|p| p.into_owned()),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the server keeps of a password for one mechanism (as in `system.users`
/// `credentials`): never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// `iterationCount`.
    pub iterations: u32,
    /// `salt`.
    pub salt: Vec<u8>,
    /// `storedKey` = H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// `serverKey` = HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl Credentials {
    /// Derives credentials from an already prepared password (see
    /// [`Mechanism::prepare_password`]).
    pub fn derive(mechanism: Mechanism, prepared: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let salted = mechanism.salted_password(prepared.as_bytes(), &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        Credentials {
            mechanism,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
            salt,
        }
    }

    /// Credentials for a new password, with a random salt and the default iterations.
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> Option<Self> {
        let prepared = mechanism.prepare_password(user, password)?;
        let salt_len = match mechanism {
            Mechanism::Sha1 => 16,
            Mechanism::Sha256 => 28,
        };
        let salt: Vec<u8> = (0..salt_len).map(|_| rand::random::<u8>()).collect();
        Some(Self::derive(
            mechanism,
            &prepared,
            salt,
            mechanism.default_iterations(),
        ))
    }

    /// Checks a client proof over `auth_message`; on success, the server signature to send.
    pub fn verify(&self, auth_message: &str, proof: &[u8]) -> Option<Vec<u8>> {
        let m = self.mechanism;
        let signature = m.hmac(&self.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return None;
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        if m.hash(&client_key) != self.stored_key {
            return None;
        }
        Some(m.hmac(&self.server_key, auth_message.as_bytes()))
    }
}

/// Splits `a=1,b=2` into its attributes (a value may itself contain `=`).
fn attributes(message: &str) -> Vec<(char, &str)> {
    message
        .split(',')
        .filter_map(|part| {
            let mut chars = part.chars();
            let key = chars.next()?;
            let rest = chars.as_str().strip_prefix('=')?;
            Some((key, rest))
        })
        .collect()
}

fn attribute<'a>(attrs: &[(char, &'a str)], key: char) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The parsed client-first message: `n,,n=user,r=nonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name (`=2C` and `=3D` decoded).
    pub user: String,
    /// The client's nonce.
    pub nonce: String,
    /// The message without its GS2 header (`n=user,r=nonce`).
    pub bare: String,
}

/// Parses a client-first message; `None` if malformed (or it asks for channel binding,
/// which MongoDB does not support).
pub fn parse_client_first(message: &str) -> Option<ClientFirst> {
    // GS2 header: "n," (no channel binding) or "y,", then an optional authzid, then ",".
    let rest = message
        .strip_prefix("n,")
        .or_else(|| message.strip_prefix("y,"))?;
    let comma = rest.find(',')?;
    let bare = &rest[comma + 1..];
    let attrs = attributes(bare);
    let user = attribute(&attrs, 'n')?
        .replace("=2C", ",")
        .replace("=3D", "=");
    let nonce = attribute(&attrs, 'r')?.to_string();
    if nonce.is_empty() || attribute(&attrs, 'm').is_some() {
        return None;
    }
    Some(ClientFirst {
        user,
        nonce,
        bare: bare.to_string(),
    })
}

/// The server side of one conversation, between `saslStart` and the last `saslContinue`.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// `conversationId`.
    pub id: i32,
    /// The database the user is defined on.
    pub db: String,
    /// The user (as stored).
    pub user: String,
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user's credentials for it; `None` for an unknown user, which fails only at the
    /// proof so that the client learns nothing about which part was wrong.
    pub credentials: Option<Credentials>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// Whether the proof was checked (the next step is the empty exchange).
    pub proved: bool,
}

impl Conversation {
    /// Starts a conversation from the client-first message; returns it and the server-first
    /// message. Unknown users get made-up salt and iterations.
    pub fn start(
        id: i32,
        db: &str,
        mechanism: Mechanism,
        first: &ClientFirst,
        credentials: Option<Credentials>,
    ) -> (Conversation, String) {
        let server_nonce: [u8; 24] = rand::random();
        let nonce = format!("{}{}", first.nonce, B64.encode(server_nonce));
        let (salt, iterations) = match &credentials {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                (0..16).map(|_| rand::random::<u8>()).collect(),
                mechanism.default_iterations(),
            ),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        let conv = Conversation {
            id,
            db: db.to_string(),
            user: first.user.clone(),
            mechanism,
            credentials,
            client_first_bare: first.bare.clone(),
            server_first: server_first.clone(),
            nonce,
            proved: false,
        };
        (conv, server_first)
    }

    /// Checks the client-final message (`c=biws,r=nonce,p=proof`); on success, the
    /// server-final message (`v=signature`).
    pub fn finish(&mut self, client_final: &str) -> Option<String> {
        let attrs = attributes(client_final);
        let channel = attribute(&attrs, 'c')?;
        // No channel binding: the GS2 header was "n,," ("biws") or "y,," ("eSws").
        if channel != "biws" && channel != "eSws" {
            return None;
        }
        if attribute(&attrs, 'r')? != self.nonce {
            return None;
        }
        let proof_at = client_final.rfind(",p=")?;
        let without_proof = &client_final[..proof_at];
        let proof = B64.decode(attribute(&attrs, 'p')?).ok()?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = self.credentials.as_ref()?.verify(&auth_message, &proof)?;
        self.proved = true;
        Some(format!("v={}", B64.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: user "user", password "pencil".
    #[test]
    fn rfc7677_sha256_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = Credentials::derive(Mechanism::Sha256, "pencil", salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let signature = creds.verify(auth_message, &proof).expect("proof accepted");
        assert_eq!(
            B64.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let mut wrong = proof.clone();
        wrong[0] ^= 1;
        assert!(creds.verify(auth_message, &wrong).is_none());
    }

    /// RFC 5802 §5: user "user", password "pencil" (plain SCRAM-SHA-1, without MongoDB's
    /// password digest).
    #[test]
    fn rfc5802_sha1_exchange() {
        let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
        let creds = Credentials::derive(Mechanism::Sha1, "pencil", salt, 4096);
        let auth_message = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,\
            r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,\
            c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let proof = B64.decode("v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=").unwrap();
        let signature = creds.verify(auth_message, &proof).expect("proof accepted");
        assert_eq!(B64.encode(signature), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    /// MongoDB's SCRAM-SHA-1 password digest (the driver auth spec's example).
    #[test]
    fn sha1_password_is_mongodb_digest() {
        let p = Mechanism::Sha1.prepare_password("user", "pencil").unwrap();
        assert_eq!(p, "1c33006ec1ffd90f9cadcbcc0e118200");
    }

    #[test]
    fn sha256_password_is_saslprepped() {
        // U+00AD (soft hyphen) maps to nothing; U+2168 (Roman nine) to "IX" under NFKC.
        assert_eq!(
            Mechanism::Sha256
                .prepare_password("u", "I\u{00AD}X")
                .as_deref(),
            Some("IX")
        );
        assert_eq!(
            Mechanism::Sha256
                .prepare_password("u", "\u{2168}")
                .as_deref(),
            Some("IX")
        );
        // A prohibited character (U+0007) is refused.
        assert!(
            Mechanism::Sha256
                .prepare_password("u", "\u{0007}")
                .is_none()
        );
    }

    #[test]
    fn client_first_parsing() {
        let f = parse_client_first("n,,n=a=2Cb=3Dc,r=abc").unwrap();
        assert_eq!(f.user, "a,b=c");
        assert_eq!(f.nonce, "abc");
        assert_eq!(f.bare, "n=a=2Cb=3Dc,r=abc");
        assert!(parse_client_first("p=tls-unique,,n=a,r=abc").is_none());
        assert!(parse_client_first("garbage").is_none());
    }

    #[test]
    fn full_conversation_with_unknown_user_fails_at_the_proof() {
        let first = parse_client_first("n,,n=nobody,r=abc").unwrap();
        let (mut conv, server_first) =
            Conversation::start(1, "admin", Mechanism::Sha256, &first, None);
        assert!(server_first.starts_with("r=abc"));
        let nonce = server_first.split(',').next().unwrap();
        assert!(conv.finish(&format!("c=biws,{nonce},p=AAAA")).is_none());
    }
}

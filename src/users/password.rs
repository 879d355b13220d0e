//! Password hashing with argon2id. Hashing is deliberately slow, so it runs on the blocking pool
//! and never stalls the async workers.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{Error, Result};

/// Bounds how many hashes run at once. Each argon2id hash holds 19 MiB while it runs, and
/// hashing is CPU-bound, so more hashes in parallel than cores only cost memory.
pub struct HashLimit(tokio::sync::Semaphore);

impl HashLimit {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self(tokio::sync::Semaphore::new(cores))
    }
}

impl Default for HashLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// Hash `password` to a PHC string (`$argon2id$v=19$…`) with a fresh random salt.
pub async fn hash(password: String, limit: &HashLimit) -> Result<String> {
    let _permit = limit.0.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
pub async fn verify(password: String, stored: String, limit: &HashLimit) -> Result<bool> {
    let _permit = limit.0.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            tracing::error!("stored password hash does not parse");
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let limit = super::HashLimit::new();
        let a = super::hash("correct horse".into(), &limit).await.unwrap();
        let b = super::hash("correct horse".into(), &limit).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(
            super::verify("correct horse".into(), a.clone(), &limit)
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong".into(), a, &limit).await.unwrap());
        assert!(
            !super::verify("x".into(), "not a hash".into(), &limit)
                .await
                .unwrap()
        );
    }
}

//! Password hashing with argon2id. Hashing is deliberately slow, so it runs on the blocking pool
//! and never stalls the async workers.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// argon2id with 7 MiB and 5 passes: one of the five settings the OWASP Password Storage Cheat
/// Sheet lists as giving equal defence (19 MiB × 2 passes, the crate's default, is another;
/// they trade memory for passes). The low-memory one keeps a burst of logins or registrations
/// from dominating the server's footprint (a hash holds its memory while it runs). Verifying
/// reads the parameters from the stored hash, so hashes made with other settings still verify.
fn hasher() -> Argon2<'static> {
    const MEMORY_KIB: u32 = 7 * 1024;
    const PASSES: u32 = 5;
    const LANES: u32 = 1;
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Bounds how many hashes run at once. Each argon2id hash holds its memory while it runs, and
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
        let hashed = hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(Error::internal);
        give_back_hash_memory();
        hashed
    })
    .await
    .map_err(Error::internal)?
}

/// Return a hash's freed memory to the system now. The allocator (mimalloc, `main.rs`)
/// gives freed memory back lazily, when it next runs on some thread after its purge delay,
/// and nothing runs on an idle server: the 7 MiB of the last login or registration stayed
/// resident until the next request (measured: an idle server after one registration held
/// 8 MiB more). A forced collection costs microseconds against a hash's tens of milliseconds.
fn give_back_hash_memory() {
    // SAFETY: no arguments to uphold; collects this thread's heap and the shared arenas.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
pub async fn verify(password: String, stored: String, limit: &HashLimit) -> Result<bool> {
    let _permit = limit.0.acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            tracing::error!("stored password hash does not parse");
            return false;
        };
        let matches = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        give_back_hash_memory();
        matches
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
        assert!(a.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(
            super::verify("correct horse".into(), a.clone(), &limit)
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong".into(), a, &limit).await.unwrap());
        // A hash made with the crate's default parameters (19 MiB, 2 passes) still verifies.
        let default = {
            use argon2::password_hash::PasswordHasher;
            argon2::Argon2::default()
                .hash_password(b"correct horse")
                .unwrap()
                .to_string()
        };
        assert!(default.contains("m=19456,t=2"), "{default}");
        assert!(
            super::verify("correct horse".into(), default, &limit)
                .await
                .unwrap()
        );
        assert!(
            !super::verify("x".into(), "not a hash".into(), &limit)
                .await
                .unwrap()
        );
    }
}

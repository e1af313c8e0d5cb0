//! Randomness as an argument (the engine is sans-IO): the [`Entropy`] trait, the operating
//! system's source [`OsEntropy`], and [`Coins`], which replays recorded bytes (transcripts,
//! known answers).

use super::PqError;
use core::fmt;

/// A source of random bytes, passed to every randomized operation (the engine is sans-IO).
pub trait Entropy {
    /// Fills `dest` entirely or fails.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError>;
}

/// The operating system's random source (`getrandom`; `crypto.getRandomValues` on wasm).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        getrandom::fill(dest).map_err(|_| PqError::Random)
    }
}

/// Replays recorded random bytes in order; running out is [`PqError::Random`].
#[derive(Clone)]
pub struct Coins<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Coins<'a> {
    /// Serves `bytes` front to back.
    pub fn new(bytes: &'a [u8]) -> Self {
        Coins { bytes, pos: 0 }
    }
    /// Bytes not yet served.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

impl fmt::Debug for Coins<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coins")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl Entropy for Coins<'_> {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        let end = self.pos.checked_add(dest.len()).ok_or(PqError::Random)?;
        let src = self.bytes.get(self.pos..end).ok_or(PqError::Random)?;
        dest.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        (**self).fill(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coins_run_out() {
        let mut c = Coins::new(&[1, 2, 3]);
        let mut b = [0u8; 2];
        assert!(c.fill(&mut b).is_ok());
        assert_eq!(c.remaining(), 1);
        assert_eq!(c.fill(&mut b), Err(PqError::Random));
    }
}

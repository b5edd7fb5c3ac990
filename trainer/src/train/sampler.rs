//! The P×K batch sampler: P identities, K images each (FaceNet used about 40 faces per identity per
//! mini-batch; small datasets use what they have).
//!
//! Only images with a face are drawn; identities with fewer than `--min-images` of them (2 by
//! default: an anchor-positive pair needs two photos) are counted and left out. Identities with fewer than K images are drawn with
//! repetition (the augmentation makes the repeats differ). Each step's draw depends only on
//! (seed, step), so a resumed run draws what the uninterrupted run would have.

use super::rng::Rng;

/// Identity `label` and its usable image indices (into the chip list).
#[derive(Clone, Debug)]
pub struct Pool {
    pub identities: Vec<Vec<usize>>,
    /// Identities left out for having fewer than two usable images.
    pub skipped_identities: usize,
}

impl Pool {
    /// `images_of[i]` = chip indices of identity `i`; `usable(j)` = chip `j` has a face. Identities
    /// with fewer than `min_images` usable images (at least 1) are left out and counted.
    pub fn new(
        images_of: &[Vec<usize>],
        min_images: usize,
        usable: impl Fn(usize) -> bool,
    ) -> Pool {
        let mut identities = Vec::new();
        let mut skipped = 0;
        for imgs in images_of {
            let ok: Vec<usize> = imgs.iter().copied().filter(|&j| usable(j)).collect();
            if ok.len() >= min_images.max(1) {
                identities.push(ok);
            } else {
                skipped += 1;
            }
        }
        Pool {
            identities,
            skipped_identities: skipped,
        }
    }

    pub fn num_images(&self) -> usize {
        self.identities.iter().map(Vec::len).sum()
    }
}

/// One batch: chip indices and their identity labels (indices into the pool), `p * k` long, grouped
/// identity by identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<usize>,
    pub labels: Vec<usize>,
}

pub struct Sampler {
    pub p: usize,
    pub k: usize,
    seed: u64,
}

impl Sampler {
    /// Refuses `p < 2` (no negatives) or `k < 2` (no positives); P is capped at the pool's size.
    pub fn new(pool: &Pool, p: usize, k: usize, seed: u64) -> anyhow::Result<Sampler> {
        anyhow::ensure!(
            p >= 2,
            "--p must be at least 2 (negatives come from other identities)"
        );
        anyhow::ensure!(
            k >= 2,
            "--k must be at least 2 (positives come from the same identity)"
        );
        anyhow::ensure!(
            pool.identities.len() >= 2,
            "only {} identity has enough images with a detected face: triplets need at least 2 identities",
            pool.identities.len()
        );
        Ok(Sampler {
            p: p.min(pool.identities.len()),
            k,
            seed,
        })
    }

    pub fn batch(&self, pool: &Pool, step: u64) -> Batch {
        let mut rng = Rng::for_step(self.seed, 0xBA7C, step);
        let mut ids: Vec<usize> = (0..pool.identities.len()).collect();
        // Partial Fisher-Yates: the first P entries are a uniform draw without replacement.
        for i in 0..self.p {
            let j = i + rng.below(ids.len() - i);
            ids.swap(i, j);
        }
        let mut batch = Batch {
            images: Vec::with_capacity(self.p * self.k),
            labels: Vec::with_capacity(self.p * self.k),
        };
        for &id in &ids[..self.p] {
            let mut imgs = pool.identities[id].clone();
            rng.shuffle(&mut imgs);
            for n in 0..self.k {
                let img = if n < imgs.len() {
                    imgs[n]
                } else {
                    imgs[rng.below(imgs.len())]
                };
                batch.images.push(img);
                batch.labels.push(id);
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_p_identities_k_images_deterministically() {
        let images_of = vec![
            vec![0, 1, 2],
            vec![3],
            vec![4, 5],
            vec![6, 7, 8, 9],
            vec![10, 11],
        ];
        assert_eq!(Pool::new(&images_of, 1, |_| true).identities.len(), 5);
        let pool = Pool::new(&images_of, 2, |j| j != 11);
        assert_eq!(pool.identities.len(), 3);
        assert_eq!(pool.skipped_identities, 2);
        let s = Sampler::new(&pool, 3, 4, 5).unwrap();
        let b = s.batch(&pool, 0);
        assert_eq!(b.images.len(), 12);
        assert_eq!(b, s.batch(&pool, 0));
        assert_ne!(b, s.batch(&pool, 1));
        for chunk in b.labels.chunks(4) {
            assert!(chunk.iter().all(|l| *l == chunk[0]));
        }
        for (img, label) in b.images.iter().zip(&b.labels) {
            assert!(pool.identities[*label].contains(img));
        }
        assert!(Sampler::new(&pool, 1, 4, 0).is_err());
        assert!(Sampler::new(&pool, 2, 1, 0).is_err());
        assert_eq!(Sampler::new(&pool, 50, 2, 0).unwrap().p, 3);
    }
}

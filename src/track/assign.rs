//! Global assignment of boxes to tracks on a small cost matrix.
//!
//! Optimal (Hungarian, Kuhn-Munkres in the O(n²m) potentials form) when the matrix is small enough,
//! which a lane always is; greedy by ascending cost beyond that, so a hostile frame with thousands of
//! boxes costs O(nm log nm), not O(n³).

/// Stands for a forbidden pair inside the Hungarian algorithm: far above any sum of real costs,
/// so the result has as many allowed pairs as possible and, among those, the least total cost.
const FORBIDDEN: f64 = 1.0e9;
/// Beyond n²m steps of this size the greedy assignment is used.
const HUNGARIAN_BUDGET: usize = 20_000_000;

/// Buffers reused between frames.
#[derive(Debug, Default)]
pub struct AssignScratch {
    u: Vec<f64>,
    v: Vec<f64>,
    p: Vec<usize>,
    way: Vec<usize>,
    minv: Vec<f64>,
    used: Vec<bool>,
    greedy: Vec<(f32, usize, usize)>,
}

impl AssignScratch {
    /// Elements held by the buffers (for memory checks).
    pub fn capacity(&self) -> usize {
        self.u.capacity()
            + self.v.capacity()
            + self.p.capacity()
            + self.way.capacity()
            + self.minv.capacity()
            + self.used.capacity()
            + self.greedy.capacity()
    }

    /// Gives memory back after an unusually large frame.
    pub fn shrink_to(&mut self, elements: usize) {
        self.u.shrink_to(elements);
        self.v.shrink_to(elements);
        self.p.shrink_to(elements);
        self.way.shrink_to(elements);
        self.minv.shrink_to(elements);
        self.used.shrink_to(elements);
        self.greedy.shrink_to(elements);
    }
}

/// Pairs `(row, col)` of the row-major `rows` x `cols` matrix `costs`, each row and column in at
/// most one pair; a cost that is not finite forbids its pair. Written into `out` (cleared first).
pub fn assign(
    costs: &[f32],
    rows: usize,
    cols: usize,
    scratch: &mut AssignScratch,
    out: &mut Vec<(usize, usize)>,
) {
    out.clear();
    if rows == 0 || cols == 0 || costs.len() < rows * cols {
        return;
    }
    let (n, m) = (rows.min(cols), rows.max(cols));
    if n.saturating_mul(n).saturating_mul(m) <= HUNGARIAN_BUDGET {
        hungarian(costs, rows, cols, scratch, out);
    } else {
        greedy(costs, rows, cols, scratch, out);
    }
}

/// Lowest cost first, skipping pairs whose row or column is taken.
fn greedy(
    costs: &[f32],
    rows: usize,
    cols: usize,
    scratch: &mut AssignScratch,
    out: &mut Vec<(usize, usize)>,
) {
    let pairs = &mut scratch.greedy;
    pairs.clear();
    for r in 0..rows {
        for c in 0..cols {
            let cost = costs[r * cols + c];
            if cost.is_finite() {
                pairs.push((cost, r, c));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let used = &mut scratch.used;
    used.clear();
    used.resize(rows + cols, false);
    for &(_, r, c) in pairs.iter() {
        if !used[r] && !used[rows + c] {
            used[r] = true;
            used[rows + c] = true;
            out.push((r, c));
        }
    }
}

/// Kuhn-Munkres with potentials over n <= m (the matrix is transposed when it has more rows
/// than columns); forbidden pairs are dropped from the result.
fn hungarian(
    costs: &[f32],
    rows: usize,
    cols: usize,
    s: &mut AssignScratch,
    out: &mut Vec<(usize, usize)>,
) {
    let transposed = rows > cols;
    let (n, m) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let cost = |i: usize, j: usize| -> f64 {
        let c = if transposed {
            costs[j * cols + i]
        } else {
            costs[i * cols + j]
        };
        if c.is_finite() {
            f64::from(c)
        } else {
            FORBIDDEN
        }
    };
    let reset = |v: &mut Vec<f64>, len: usize, x: f64| {
        v.clear();
        v.resize(len, x);
    };
    reset(&mut s.u, n + 1, 0.0);
    reset(&mut s.v, m + 1, 0.0);
    s.p.clear();
    s.p.resize(m + 1, 0);
    s.way.clear();
    s.way.resize(m + 1, 0);
    // 1-based rows and columns; column 0 is the algorithm's virtual start.
    for i in 1..=n {
        s.p[0] = i;
        let mut j0 = 0usize;
        reset(&mut s.minv, m + 1, f64::INFINITY);
        s.used.clear();
        s.used.resize(m + 1, false);
        loop {
            s.used[j0] = true;
            let i0 = s.p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if s.used[j] {
                    continue;
                }
                let cur = cost(i0 - 1, j - 1) - s.u[i0] - s.v[j];
                if cur < s.minv[j] {
                    s.minv[j] = cur;
                    s.way[j] = j0;
                }
                if s.minv[j] < delta {
                    delta = s.minv[j];
                    j1 = j;
                }
            }
            if j1 == 0 {
                break; // cannot happen with n <= m; guards the indexing below regardless
            }
            for j in 0..=m {
                if s.used[j] {
                    s.u[s.p[j]] += delta;
                    s.v[j] -= delta;
                } else {
                    s.minv[j] -= delta;
                }
            }
            j0 = j1;
            if s.p[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = s.way[j0];
            s.p[j0] = s.p[j1];
            j0 = j1;
        }
    }
    for j in 1..=m {
        let i = s.p[j];
        if i == 0 || cost(i - 1, j - 1) >= FORBIDDEN {
            continue;
        }
        out.push(if transposed {
            (j - 1, i - 1)
        } else {
            (i - 1, j - 1)
        });
    }
    out.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(costs: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        assign(costs, rows, cols, &mut AssignScratch::default(), &mut out);
        out
    }

    const NO: f32 = f32::INFINITY;

    #[test]
    fn hungarian_beats_greedy_where_greedy_is_wrong() {
        // Greedy takes (0,0) at 0.1 and must then pair (1,1) at 0.9: total 1.0. Optimal: 0.3 + 0.3.
        let costs = [0.1, 0.3, 0.3, 0.9];
        assert_eq!(run(&costs, 2, 2), vec![(0, 1), (1, 0)]);
        let mut out = Vec::new();
        greedy(&costs, 2, 2, &mut AssignScratch::default(), &mut out);
        assert_eq!(out, vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn forbidden_pairs_are_never_made() {
        assert!(run(&[NO, NO, NO, NO], 2, 2).is_empty());
        assert_eq!(run(&[NO, 0.5, NO, NO, f32::NAN, NO], 2, 3), vec![(0, 1)]);
    }

    #[test]
    fn rectangular_both_ways() {
        // Three rows, two columns.
        let costs = [0.9, 0.2, 0.1, 0.8, 0.5, 0.5];
        assert_eq!(run(&costs, 3, 2), vec![(0, 1), (1, 0)]);
        // Its transpose.
        let t = [0.9, 0.1, 0.5, 0.2, 0.8, 0.5];
        assert_eq!(run(&t, 2, 3), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn large_matrices_fall_back_to_a_valid_greedy_assignment() {
        // 300 x 300 is past the Hungarian budget.
        let n = 300;
        let costs: Vec<f32> = (0..n * n)
            .map(|k| {
                if k % 7 == 0 {
                    NO
                } else {
                    (k * 37 % 101) as f32 / 100.0
                }
            })
            .collect();
        let pairs = run(&costs, n, n);
        let (mut rows, mut cols) = (vec![false; n], vec![false; n]);
        for &(r, c) in &pairs {
            assert!(costs[r * n + c].is_finite());
            assert!(!rows[r] && !cols[c], "({r}, {c}) reused");
            rows[r] = true;
            cols[c] = true;
        }
        assert!(pairs.len() > n / 2);
    }

    #[test]
    fn empty_and_short_inputs() {
        assert!(run(&[], 0, 3).is_empty());
        assert!(run(&[0.1], 2, 2).is_empty());
    }
}

//! Percentiles for the benchmark programs.

/// Samples in microseconds, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    v: Vec<f64>,
}

impl Stats {
    pub fn from_vec(v: Vec<f64>) -> Stats {
        Stats { v }
    }

    pub fn push(&mut self, x: f64) {
        self.v.push(x);
    }

    /// The samples, in the order taken.
    pub fn samples(&self) -> &[f64] {
        &self.v
    }

    pub fn len_samples(&self) -> usize {
        self.v.len()
    }

    fn pct(&self, p: f64) -> f64 {
        if self.v.is_empty() {
            return f64::NAN;
        }
        let mut s = self.v.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let i = ((s.len() as f64 - 1.0) * p).round() as usize;
        s[i.min(s.len() - 1)]
    }

    /// The median: the middle sample, or the mean of the two middle ones for an even count
    /// (what a handful of long runs wants, where p50 would pick one of the two).
    pub fn median(&self) -> f64 {
        let mut s = self.v.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }

    pub fn p50(&self) -> f64 {
        self.pct(0.50)
    }

    pub fn p99(&self) -> f64 {
        self.pct(0.99)
    }

    /// Mean of the first `n` samples (in order taken).
    pub fn first_mean(&self, n: usize) -> f64 {
        let n = n.min(self.v.len()).max(1);
        self.v[..n].iter().sum::<f64>() / n as f64
    }

    /// Mean of the last `n` samples.
    pub fn last_mean(&self, n: usize) -> f64 {
        let n = n.min(self.v.len()).max(1);
        self.v[self.v.len() - n..].iter().sum::<f64>() / n as f64
    }
}

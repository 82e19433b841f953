//! Slide-level metrics: accuracy, balanced accuracy, macro one-vs-rest ROC AUC, confusion
//! matrix, and Harrell's concordance index for survival.

use serde::{Deserialize, Serialize};

/// Fraction of slides whose predicted class is the true class. `NaN` for no slide.
pub fn accuracy(truth: &[usize], pred: &[usize]) -> f64 {
    let correct = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    correct as f64 / truth.len() as f64
}

/// Mean recall over the classes present in `truth`. `NaN` for no slide.
pub fn balanced_accuracy(truth: &[usize], pred: &[usize], classes: usize) -> f64 {
    let cm = confusion_matrix(truth, pred, classes);
    let recalls: Vec<f64> = cm
        .iter()
        .enumerate()
        .filter(|(_, row)| row.iter().sum::<usize>() > 0)
        .map(|(c, row)| row[c] as f64 / row.iter().sum::<usize>() as f64)
        .collect();
    recalls.iter().sum::<f64>() / recalls.len() as f64
}

/// `matrix[true][predicted]` slide counts.
pub fn confusion_matrix(truth: &[usize], pred: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut cm = vec![vec![0; classes]; classes];
    for (&t, &p) in truth.iter().zip(pred) {
        cm[t][p] += 1;
    }
    cm
}

/// ROC AUC of `scores` for separating `positive` from the rest: the probability that a random
/// positive scores above a random negative, ties counting one half. `None` without both a
/// positive and a negative.
pub fn binary_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let pos: Vec<f64> = scores
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(positive)
        .filter(|(_, p)| !**p)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

/// Macro one-vs-rest ROC AUC: the mean over classes of each class's probability's AUC against
/// the other classes, over the classes that have both positives and negatives. For two
/// classes this is the AUC of the second class's probability. `None` when no class
/// qualifies.
///
/// `probs` is `[slides][classes]`.
pub fn macro_auc(truth: &[usize], probs: &[Vec<f64>]) -> Option<f64> {
    let classes = probs.first().map_or(0, Vec::len);
    let aucs: Vec<f64> = (0..classes)
        .filter_map(|c| {
            let scores: Vec<f64> = probs.iter().map(|p| p[c]).collect();
            let positive: Vec<bool> = truth.iter().map(|&t| t == c).collect();
            binary_auc(&scores, &positive)
        })
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

/// Harrell's concordance index, computed as scikit-survival's `concordance_index_censored`:
/// a pair is comparable when the earlier time is an event (`event[i]`), or when the times are
/// equal and only one of the two is an event (the event one counts as earlier); it is
/// concordant when the earlier one has the higher risk; risks within `1e-8` count one half.
/// `None` when no pair is comparable.
pub fn concordance_index(event: &[bool], time: &[f64], risk: &[f64]) -> Option<f64> {
    const TIED_TOL: f64 = 1e-8;
    let mut numerator = 0.0;
    let mut denominator = 0.0;
    for i in 0..time.len() {
        if !event[i] {
            continue;
        }
        for j in 0..time.len() {
            let comparable = time[j] > time[i] || (time[j] == time[i] && !event[j]);
            if i == j || !comparable {
                continue;
            }
            denominator += 1.0;
            if (risk[j] - risk[i]).abs() <= TIED_TOL {
                numerator += 0.5;
            } else if risk[j] < risk[i] {
                numerator += 1.0;
            }
        }
    }
    (denominator > 0.0).then(|| numerator / denominator)
}

/// The log-rank test of equal survival across `groups` groups (`group[i]` in `0..groups`):
/// the chi-squared statistic `zᵀ V⁻¹ z` over the first `groups − 1` groups' observed minus
/// expected events, with the hypergeometric variance (ties: all events at a time count at
/// once, and patients censored at that time are still at risk), and its p-value with
/// `groups − 1` degrees of freedom; as lifelines' `logrank_test` (two groups) and
/// `multivariate_logrank_test`. `None` for fewer than two non-empty groups, no event, more
/// than 3 groups, or a singular variance.
pub fn logrank(time: &[f64], event: &[bool], group: &[usize], groups: usize) -> Option<(f64, f64)> {
    if !(2..=3).contains(&groups) {
        return None;
    }
    let present = (0..groups).filter(|g| group.contains(g)).count();
    if present < 2 || !event.iter().any(|&e| e) {
        return None;
    }
    let k = groups - 1;
    let mut z = vec![0.0; k];
    let mut v = vec![vec![0.0; k]; k];
    let mut times: Vec<f64> = time
        .iter()
        .zip(event)
        .filter(|(_, e)| **e)
        .map(|(t, _)| *t)
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    for &t in &times {
        let mut at_risk = vec![0.0f64; groups];
        let mut deaths = vec![0.0f64; groups];
        for i in 0..time.len() {
            if time[i] >= t {
                at_risk[group[i]] += 1.0;
                if time[i] == t && event[i] {
                    deaths[group[i]] += 1.0;
                }
            }
        }
        let n: f64 = at_risk.iter().sum();
        let d: f64 = deaths.iter().sum();
        let spread = if n > 1.0 {
            d * (n - d) / (n - 1.0)
        } else {
            0.0
        };
        for j in 0..k {
            z[j] += deaths[j] - d * at_risk[j] / n;
            for l in 0..k {
                let delta = if j == l { 1.0 } else { 0.0 };
                v[j][l] += spread * (at_risk[j] / n) * (delta - at_risk[l] / n);
            }
        }
    }
    let statistic = match k {
        1 => (v[0][0] > 0.0).then(|| z[0] * z[0] / v[0][0])?,
        _ => {
            let det = v[0][0] * v[1][1] - v[0][1] * v[1][0];
            if det.abs() < 1e-300 {
                return None;
            }
            let inv = [
                [v[1][1] / det, -v[0][1] / det],
                [-v[1][0] / det, v[0][0] / det],
            ];
            z[0] * (inv[0][0] * z[0] + inv[0][1] * z[1])
                + z[1] * (inv[1][0] * z[0] + inv[1][1] * z[1])
        }
    };
    Some((statistic, chi2_sf(statistic, k)))
}

/// The survival function of the chi-squared distribution with 1 or 2 degrees of freedom:
/// `erfc(√(x/2))` and `exp(−x/2)`.
pub fn chi2_sf(x: f64, df: usize) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    match df {
        1 => upper_gamma_half(x / 2.0),
        2 => (-x / 2.0).exp(),
        _ => f64::NAN,
    }
}

/// `Q(1/2, x) = erfc(√x)`, the regularized upper incomplete gamma function at a = 1/2: by
/// its series below `x = 1.5`, by its continued fraction (modified Lentz) above; accurate to
/// about 1e-15.
fn upper_gamma_half(x: f64) -> f64 {
    const A: f64 = 0.5;
    let ln_gamma_a = 0.5 * std::f64::consts::PI.ln(); // ln Γ(1/2) = ln √π
    let prefix = (-x + A * x.ln() - ln_gamma_a).exp();
    if x < A + 1.0 {
        // P(a, x) = prefix · Σ xⁿ / (a (a+1) … (a+n)).
        let (mut term, mut sum, mut ap) = (1.0 / A, 1.0 / A, A);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        return (1.0 - prefix * sum).max(0.0);
    }
    let tiny = 1e-300;
    let mut b = x + 1.0 - A;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..500 {
        let an = -(i as f64) * (i as f64 - A);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    prefix * h
}

/// Risk groups: with 2, patients whose risk is above the median are group 1, the rest 0;
/// with 3, cut at the 1/3 and 2/3 quantiles (linear interpolation, as numpy's default), a
/// risk equal to a cut going to the lower group.
pub fn risk_groups(risk: &[f64], groups: usize) -> Vec<usize> {
    let mut sorted = risk.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cuts: Vec<f64> = (1..groups)
        .map(|g| quantile(&sorted, g as f64 / groups as f64))
        .collect();
    risk.iter()
        .map(|r| cuts.iter().filter(|&&c| *r > c).count())
        .collect()
}

/// The `q` quantile of sorted values, linearly interpolated (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A percentile bootstrap interval: `reps` resamples of `n` items with replacement, drawn
/// from `seed` (reproducible), `statistic` of each (resamples where it is undefined are
/// skipped), and the 2.5th and 97.5th percentiles of the values. `None` without a value.
pub fn bootstrap_ci(
    n: usize,
    reps: usize,
    seed: u64,
    statistic: impl Fn(&[usize]) -> Option<f64>,
) -> Option<[f64; 2]> {
    use rand::{Rng, SeedableRng};
    if n == 0 || reps == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut values: Vec<f64> = (0..reps)
        .filter_map(|_| {
            let sample: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            statistic(&sample).filter(|v| v.is_finite())
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some([quantile(&values, 0.025), quantile(&values, 0.975)])
}

/// A Kaplan–Meier curve: the survival probability after each observed time, with a
/// pointwise 95 % interval and the number at risk.
#[derive(Debug, Clone, PartialEq)]
pub struct KaplanMeier {
    /// 0, then every distinct observed time (event or censoring), ascending.
    pub times: Vec<f64>,
    /// `S(t)` just after each time (a step function, right-continuous).
    pub survival: Vec<f64>,
    /// Lower end of the 95 % interval.
    pub lower: Vec<f64>,
    /// Upper end of the 95 % interval.
    pub upper: Vec<f64>,
    /// Patients at risk at each time (time ≥ t).
    pub at_risk: Vec<usize>,
}

/// The Kaplan–Meier estimate of `time`/`event`, with lifelines' default interval: Greenwood's
/// variance on `log(−log S)` (the exponential Greenwood interval), `z` = 1.959963984540054;
/// where `S` is 1 or 0 the interval is the point. As lifelines' `KaplanMeierFitter`.
pub fn kaplan_meier(time: &[f64], event: &[bool]) -> KaplanMeier {
    const Z: f64 = 1.959_963_984_540_054;
    let mut distinct: Vec<f64> = time.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let mut km = KaplanMeier {
        times: vec![0.0],
        survival: vec![1.0],
        lower: vec![1.0],
        upper: vec![1.0],
        at_risk: vec![time.len()],
    };
    let (mut s, mut greenwood) = (1.0f64, 0.0f64);
    for &t in distinct.iter().filter(|&&t| t > 0.0) {
        let n = time.iter().filter(|&&x| x >= t).count();
        let d = time
            .iter()
            .zip(event)
            .filter(|(x, e)| **x == t && **e)
            .count();
        if d > 0 {
            s *= 1.0 - d as f64 / n as f64;
            greenwood += if n > d {
                d as f64 / (n as f64 * (n - d) as f64)
            } else {
                f64::INFINITY
            };
        }
        let (lower, upper) = if s > 0.0 && s < 1.0 && greenwood.is_finite() {
            let spread = Z * greenwood.sqrt() / s.ln().abs();
            (s.powf(spread.exp()), s.powf((-spread).exp()))
        } else {
            (s, s)
        };
        km.times.push(t);
        km.survival.push(s);
        km.lower.push(lower);
        km.upper.push(upper);
        km.at_risk.push(n);
    }
    km
}

/// The censoring distribution `Ĝ(t)`: the Kaplan–Meier estimate of staying uncensored, with
/// the censorings as the events and, at a tied time, events leaving the risk set before the
/// censorings; as scikit-survival's `CensoringDistributionEstimator` (`Ĝ ≡ 1` when every
/// time is an event). Beyond its last time `Ĝ` keeps its last value, where scikit-survival
/// refuses: [`IpcwTimes::beyond`] counts the patients this touches.
#[derive(Debug, Clone, PartialEq)]
pub struct Censoring {
    times: Vec<f64>,
    survival: Vec<f64>,
}

impl Censoring {
    /// Estimates `Ĝ` from `time`/`event` (in practice the training patients').
    pub fn fit(time: &[f64], event: &[bool]) -> Self {
        let mut times: Vec<f64> = time.to_vec();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let mut survival = Vec::with_capacity(times.len());
        let mut g = 1.0;
        for &t in &times {
            let at_risk = time.iter().filter(|&&x| x >= t).count();
            let (mut events, mut censored) = (0, 0);
            for (&x, &e) in time.iter().zip(event) {
                if x == t {
                    if e {
                        events += 1;
                    } else {
                        censored += 1;
                    }
                }
            }
            if censored > 0 {
                g *= 1.0 - censored as f64 / (at_risk - events) as f64;
            }
            survival.push(g);
        }
        Self { times, survival }
    }

    /// `Ĝ(t)`: its value at the last time `≤ t` (1 before the first).
    pub fn at(&self, t: f64) -> f64 {
        let k = self.times.partition_point(|&x| x <= t);
        if k == 0 { 1.0 } else { self.survival[k - 1] }
    }

    /// The last time the estimate saw (`−∞` for none).
    pub fn last_time(&self) -> f64 {
        self.times.last().copied().unwrap_or(f64::NEG_INFINITY)
    }
}

/// Uno's concordance index: Harrell's pairs (see [`concordance_index`], same ties and
/// `1e-8` risk tolerance), each weighted by `Ĝ(tᵢ)⁻²` of its earlier patient's event time; as
/// scikit-survival's `concordance_index_ipcw` with `tau = None`. An event where `Ĝ = 0` weighs
/// nothing (scikit-survival refuses it; this equals its result with `tau` at that time).
/// `None` when no pair carries weight.
pub fn concordance_index_ipcw(
    censoring: &Censoring,
    event: &[bool],
    time: &[f64],
    risk: &[f64],
) -> Option<f64> {
    const TIED_TOL: f64 = 1e-8;
    let (mut numerator, mut denominator) = (0.0, 0.0);
    for i in 0..time.len() {
        let g = censoring.at(time[i]);
        if !event[i] || g <= 0.0 {
            continue;
        }
        let w = 1.0 / (g * g);
        for j in 0..time.len() {
            let comparable = time[j] > time[i] || (time[j] == time[i] && !event[j]);
            if i == j || !comparable {
                continue;
            }
            denominator += w;
            if (risk[j] - risk[i]).abs() <= TIED_TOL {
                numerator += 0.5 * w;
            } else if risk[j] < risk[i] {
                numerator += w;
            }
        }
    }
    (denominator > 0.0).then(|| numerator / denominator)
}

/// The times at which the time-dependent metrics are evaluated: the 25th, 50th and 75th
/// percentiles (numpy's linear interpolation) of the event times, without repeats, kept when
/// they lie within the follow-up `[min time, max time)` as scikit-survival requires. Empty
/// without an event.
pub fn evaluation_times(time: &[f64], event: &[bool]) -> Vec<f64> {
    let mut events: Vec<f64> = time
        .iter()
        .zip(event)
        .filter(|(_, e)| **e)
        .map(|(t, _)| *t)
        .collect();
    if events.is_empty() {
        return Vec::new();
    }
    events.sort_by(f64::total_cmp);
    let lo = time.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = time.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut times: Vec<f64> = [0.25, 0.5, 0.75]
        .iter()
        .map(|&q| quantile(&events, q))
        .filter(|&t| t >= lo && t < hi)
        .collect();
    times.dedup();
    times
}

/// The inverse-probability-of-censoring-weighted metrics of survival predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct IpcwTimes {
    /// The evaluation times.
    pub times: Vec<f64>,
    /// The cumulative/dynamic AUC at each time (`None` where it has no case or no control).
    pub auc: Vec<Option<f64>>,
    /// The AUCs' mean weighted by the drop of the evaluated patients' Kaplan–Meier estimate
    /// over each time, divided by the total drop.
    pub mean_auc: Option<f64>,
    /// The integrated Brier score over the times (`None` for fewer than two times).
    pub ibs: Option<f64>,
    /// Evaluated patients followed beyond the censoring estimate's last time.
    pub beyond: usize,
}

/// The cumulative/dynamic AUC at each of `times` and the integrated Brier score over them, as
/// scikit-survival's `cumulative_dynamic_auc` and `integrated_brier_score`. `survival[i][k]`
/// is patient `i`'s predicted survival probability at `times[k]`; the AUC scores `1 −
/// survival`. At time `t` the cases are the events at or before `t`, each weighted by
/// `1/Ĝ(tᵢ)`, the controls the patients still followed after `t`; tied scores (within `1e-8`)
/// move both rates at once, and the curve, starting at (0, 0), is integrated by trapezoids.
/// The Brier score at `t` is the mean of `Sᵢ(t)²/Ĝ(tᵢ)` over cases and `(1 − Sᵢ(t))²/Ĝ(t)`
/// over controls, a zero `Ĝ` making the term 0; it is integrated by trapezoids and divided by
/// the span of the times. An event where `Ĝ = 0` weighs nothing in the AUC (scikit-survival
/// refuses it).
pub fn ipcw_time_metrics(
    censoring: &Censoring,
    event: &[bool],
    time: &[f64],
    times: &[f64],
    survival: &[Vec<f64>],
) -> IpcwTimes {
    let n = time.len();
    let beyond = time.iter().filter(|&&t| t > censoring.last_time()).count();
    let weight: Vec<f64> = (0..n)
        .map(|i| {
            if event[i] {
                inverse(censoring.at(time[i]))
            } else {
                0.0
            }
        })
        .collect();
    let followed = Followed {
        event,
        time,
        weight: &weight,
    };
    let mut auc = Vec::with_capacity(times.len());
    let mut brier = Vec::with_capacity(times.len());
    for (k, &t) in times.iter().enumerate() {
        let at_t: Vec<f64> = survival.iter().map(|s| s[k]).collect();
        auc.push(followed.auc_at(t, &at_t));
        brier.push(followed.brier_at(t, &at_t, inverse(censoring.at(t))));
    }
    let mean_auc = if auc.len() == 1 {
        auc[0]
    } else {
        km_weighted_mean(&auc, times, time, event)
    };
    let ibs = (times.len() >= 2).then(|| {
        let area: f64 = times
            .windows(2)
            .zip(brier.windows(2))
            .map(|(t, b)| (t[1] - t[0]) * (b[0] + b[1]) / 2.0)
            .sum();
        area / (times[times.len() - 1] - times[0])
    });
    IpcwTimes {
        times: times.to_vec(),
        auc,
        mean_auc,
        ibs,
        beyond,
    }
}

/// `1/g`, or 0 where the censoring estimate `g` is 0.
fn inverse(g: f64) -> f64 {
    if g > 0.0 { 1.0 / g } else { 0.0 }
}

/// The evaluated patients of [`ipcw_time_metrics`]: events, times, and each event's weight
/// `1/Ĝ(tᵢ)` (0 for a censored patient).
struct Followed<'a> {
    event: &'a [bool],
    time: &'a [f64],
    weight: &'a [f64],
}

impl Followed<'_> {
    /// Whether patient `i` is a case at `t` (an event at or before it).
    fn case(&self, i: usize, t: f64) -> bool {
        self.time[i] <= t && self.event[i]
    }

    /// Whether patient `i` is a control at `t` (still followed after it).
    fn control(&self, i: usize, t: f64) -> bool {
        self.time[i] > t
    }

    /// The cumulative/dynamic AUC at `t` of the scores `1 − survival` (`None` without a case
    /// or a control).
    fn auc_at(&self, t: f64, survival: &[f64]) -> Option<f64> {
        const TIED_TOL: f64 = 1e-8;
        let n = self.time.len();
        let score: Vec<f64> = survival.iter().map(|s| 1.0 - s).collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
        let cases: f64 = (0..n)
            .filter(|&i| self.case(i, t))
            .map(|i| self.weight[i])
            .sum();
        let controls = (0..n).filter(|&i| self.control(i, t)).count() as f64;
        let (mut tp, mut fp) = (0.0, 0.0);
        let mut points = vec![(0.0, 0.0)];
        for (m, &i) in order.iter().enumerate() {
            if self.case(i, t) {
                tp += self.weight[i];
            }
            if self.control(i, t) {
                fp += 1.0;
            }
            let tied_next = order
                .get(m + 1)
                .is_some_and(|&j| (score[j] - score[i]).abs() <= TIED_TOL);
            if !tied_next {
                points.push((fp / controls, tp / cases));
            }
        }
        let area: f64 = points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        (cases > 0.0 && controls > 0.0 && area.is_finite()).then_some(area)
    }

    /// The Brier score at `t`, controls weighted by `g_t = 1/Ĝ(t)`.
    fn brier_at(&self, t: f64, survival: &[f64], g_t: f64) -> f64 {
        let n = self.time.len();
        let total: f64 = (0..n)
            .map(|i| {
                let s = survival[i];
                if self.case(i, t) {
                    // A case is an event: its weight is 1/Ĝ(tᵢ).
                    s * s * self.weight[i]
                } else if self.control(i, t) {
                    (1.0 - s) * (1.0 - s) * g_t
                } else {
                    0.0
                }
            })
            .sum();
        total / n as f64
    }
}

/// The AUCs' mean weighted by the drop of the Kaplan–Meier estimate over each time, divided
/// by the total drop (`None` when an AUC is missing or the estimate does not drop).
fn km_weighted_mean(
    auc: &[Option<f64>],
    times: &[f64],
    time: &[f64],
    event: &[bool],
) -> Option<f64> {
    let km: Vec<f64> = times.iter().map(|&t| km_at(time, event, t)).collect();
    let mut previous = 1.0;
    let mut integral = Some(0.0);
    for (a, &s) in auc.iter().zip(&km) {
        integral = integral.zip(*a).map(|(sum, a)| sum + a * (previous - s));
        previous = s;
    }
    let drop = 1.0 - km.last().copied().unwrap_or(1.0);
    integral
        .filter(|_| drop > 0.0)
        .map(|i| i / drop)
        .filter(|v| v.is_finite())
}

/// The Kaplan–Meier estimate at `t` (its value at the last observed time `≤ t`).
fn km_at(time: &[f64], event: &[bool], t: f64) -> f64 {
    let mut distinct: Vec<f64> = time.iter().copied().filter(|&x| x <= t).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let mut s = 1.0;
    for &u in &distinct {
        let at_risk = time.iter().filter(|&&x| x >= u).count();
        let events = time
            .iter()
            .zip(event)
            .filter(|(x, e)| **x == u && **e)
            .count();
        s *= 1.0 - events as f64 / at_risk as f64;
    }
    s
}

/// The ROC curve of `scores` for `positive`: `(false positive rate, true positive rate)`
/// points from (0, 0) to (1, 1), one per distinct score (ties move both rates at once).
pub fn roc_points(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let pos = positive.iter().filter(|&&p| p).count() as f64;
    let neg = positive.len() as f64 - pos;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push((fp / neg.max(1.0), tp / pos.max(1.0)));
    }
    points
}

/// The metrics of one evaluation, as written to `metrics.json` and `metrics.csv`. Metrics that
/// do not apply to the task (or cannot be computed, e.g. AUC with one class) are absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean loss over the bags (NaN for a modality group of `by_modality`, written `null`
    /// and read back as NaN).
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Classification: accuracy over slides.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    /// Classification: balanced accuracy over slides.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub balanced_accuracy: Option<f64>,
    /// Classification: macro one-vs-rest ROC AUC over slides.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auc: Option<f64>,
    /// Classification: confusion matrix `[true][predicted]`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confusion_matrix: Option<Vec<Vec<usize>>>,
    /// Survival: Harrell's concordance index over patients.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub c_index: Option<f64>,
    /// Survival: a 95 % percentile bootstrap interval of the c-index (final metrics only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub c_index_ci: Option<[f64; 2]>,
    /// Survival: the log-rank p-value between risk groups (final metrics only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logrank_p: Option<f64>,
    /// Survival: Uno's concordance index, inverse-probability-of-censoring weighted (final
    /// metrics only; see [`concordance_index_ipcw`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub c_index_ipcw: Option<f64>,
    /// Survival: the times of `td_auc` (the 25th, 50th and 75th percentiles of the event
    /// times; see [`evaluation_times`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub td_times: Option<Vec<f64>>,
    /// Survival: the cumulative/dynamic AUC at each of `td_times` (`null` where undefined; see
    /// [`ipcw_time_metrics`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub td_auc: Option<Vec<Option<f64>>>,
    /// Survival: the survival-weighted mean of `td_auc`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub td_auc_mean: Option<f64>,
    /// Survival: the integrated Brier score over `td_times`, from the model's survival function.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ibs: Option<f64>,
    /// Survival: whose times estimated the censoring distribution of the weighted metrics:
    /// `training` (the run's training patients), `all` (pooled cross-validation predictions)
    /// or `evaluated` (the patients evaluated, for a model applied to another cohort).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ipcw_censoring: Option<String>,
    /// Survival: evaluated patients followed beyond the last time of the censoring estimate,
    /// where it is carried forward (scikit-survival refuses such patients); absent when none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ipcw_beyond: Option<usize>,
    /// Classification: a 95 % percentile bootstrap interval of the AUC (final metrics only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auc_ci: Option<[f64; 2]>,
    /// Classification: the same for the balanced accuracy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub balanced_accuracy_ci: Option<[f64; 2]>,
    /// The same metrics for the patients of each modality group present (`both`,
    /// `wsi_only`, `rna_only`), when some patients lack a modality.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub by_modality: Option<std::collections::BTreeMap<String, Metrics>>,
}

/// A number, or `null` (how JSON writes NaN) read as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Metrics {
    /// The scalar metric `name` (`loss`, `accuracy`, `balanced_accuracy`, `auc`, `c_index`,
    /// `c_index_ipcw`, `td_auc_mean`, `ibs`), when it was computed.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        match name {
            "loss" => Some(self.loss),
            "accuracy" => self.accuracy,
            "balanced_accuracy" => self.balanced_accuracy,
            "auc" => self.auc,
            "c_index" => self.c_index,
            "c_index_ipcw" => self.c_index_ipcw,
            "td_auc_mean" => self.td_auc_mean,
            "ibs" => self.ibs,
            _ => None,
        }
    }

    /// The scalar metrics by name (loss first), for tables and `metrics.csv`; the weighted
    /// survival metrics only when computed.
    pub fn scalars(&self) -> Vec<(&'static str, Option<f64>)> {
        let mut out = vec![("loss", Some(self.loss))];
        if self.c_index.is_some() || self.accuracy.is_none() {
            out.push(("c_index", self.c_index));
            // The weighted metrics of final evaluations.
            for (name, v) in [
                ("c_index_ipcw", self.c_index_ipcw),
                ("td_auc_mean", self.td_auc_mean),
                ("ibs", self.ibs),
            ] {
                if v.is_some() {
                    out.push((name, v));
                }
            }
        } else {
            out.push(("accuracy", self.accuracy));
            out.push(("balanced_accuracy", self.balanced_accuracy));
            out.push(("auc", self.auc));
        }
        out
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Learning rate of the epoch's last optimizer step.
    pub lr: f64,
    /// Mean training loss over the epoch's bags.
    pub train_loss: f64,
    /// Validation metrics.
    pub val: Metrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_by_hand() {
        let truth = [0, 0, 0, 1, 1, 2];
        let pred = [0, 0, 1, 1, 0, 2];
        assert_eq!(accuracy(&truth, &pred), 4.0 / 6.0);
        // Recalls 2/3, 1/2, 1 → mean 13/18.
        assert!((balanced_accuracy(&truth, &pred, 3) - 13.0 / 18.0).abs() < 1e-12);
        assert_eq!(
            confusion_matrix(&truth, &pred, 3),
            vec![vec![2, 1, 0], vec![1, 1, 0], vec![0, 0, 1]]
        );
        // Class 2 never occurs in truth: it is left out of the balanced accuracy.
        assert_eq!(balanced_accuracy(&[0, 1], &[0, 0], 3), 0.5);
    }

    #[test]
    fn auc_with_ties_by_hand() {
        // Positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4) 1, (0.8>0.1) 1,
        // (0.4=0.4) 0.5, (0.4>0.1) 1 → 3.5 / 4.
        let auc = binary_auc(&[0.8, 0.4, 0.4, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!(auc, 0.875);
        assert_eq!(binary_auc(&[0.1, 0.2], &[true, true]), None);
        // Two classes: macro OvR equals the AUC of class 1's probability.
        let probs: Vec<Vec<f64>> = [0.2, 0.6, 0.6, 0.9]
            .iter()
            .map(|&p| vec![1.0 - p, p])
            .collect();
        let truth = [0, 0, 1, 1];
        let one = binary_auc(&[0.2, 0.6, 0.6, 0.9], &[false, false, true, true]).unwrap();
        assert_eq!(one, 0.875);
        assert_eq!(macro_auc(&truth, &probs), Some(one));
    }

    #[test]
    fn c_index_with_censoring_and_ties_by_hand() {
        // Times 1 (event), 2 (censored), 2 (event), 3 (event), 3 (censored).
        let time = [1.0, 2.0, 2.0, 3.0, 3.0];
        let event = [true, false, true, true, false];
        let risk = [0.9, 0.5, 0.5, 0.7, 0.1];
        // Comparable pairs (i earlier event, j):
        // i=0: j=1,2,3,4 → risks 0.5,0.5,0.7,0.1 all < 0.9: 4 concordant.
        // i=2 (t=2, event): j=1 (t=2 censored) tie in risk: 0.5; j=3: 0.7 > 0.5 discordant;
        //     j=4: 0.1 < 0.5 concordant.
        // i=3 (t=3, event): j=4 (t=3 censored): 0.1 < 0.7 concordant.
        // Total 8 pairs, 4 + 0.5 + 0 + 1 + 1 = 6.5.
        assert_eq!(concordance_index(&event, &time, &risk), Some(6.5 / 8.0));
        // Two events at the same time are not comparable.
        assert_eq!(
            concordance_index(&[true, true], &[1.0, 1.0], &[0.1, 0.2]),
            None
        );
    }
}

//! Survival statistics against lifelines and numpy (`tests/fixtures/stats/reference.json`,
//! written by `make_stats_reference.py` there), and the bootstrap's reproducibility.

use med_crossvit::eval::metrics::{
    binary_auc, bootstrap_ci, chi2_sf, concordance_index, kaplan_meier, logrank, quantile,
    risk_groups,
};

mod common;
use common::numbers;

fn reference() -> serde_json::Value {
    let path = common::manifest_dir().join("tests/fixtures/stats/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn logrank_matches_lifelines() {
    let r = reference();
    for (name, case) in r["cases"].as_object().unwrap() {
        let time = numbers(&case["time"]);
        let event: Vec<bool> = numbers(&case["event"]).iter().map(|&e| e == 1.0).collect();
        let group: Vec<usize> = numbers(&case["group"])
            .iter()
            .map(|&g| g as usize)
            .collect();
        let groups = group.iter().max().unwrap() + 1;
        let (statistic, p) = logrank(&time, &event, &group, groups).unwrap();
        let (want_s, want_p) = (
            case["statistic"].as_f64().unwrap(),
            case["p"].as_f64().unwrap(),
        );
        assert!(
            (statistic - want_s).abs() < 1e-9 * want_s.max(1.0),
            "{name}: {statistic} vs {want_s}"
        );
        assert!(
            (p - want_p).abs() < 1e-9 * want_p.max(1e-12),
            "{name}: {p} vs {want_p}"
        );
    }
    // One group, or no event: no test.
    assert_eq!(logrank(&[1.0, 2.0], &[true, true], &[0, 0], 2), None);
    assert_eq!(logrank(&[1.0, 2.0], &[false, false], &[0, 1], 2), None);
}

#[test]
fn chi_squared_tails_by_hand() {
    // P(χ²₁ > 3.841459) = 0.05 and P(χ²₂ > 5.991465) = 0.05 (the familiar critical values).
    assert!((chi2_sf(3.841_458_820_694_124, 1) - 0.05).abs() < 1e-12);
    assert!((chi2_sf(5.991_464_547_107_979, 2) - 0.05).abs() < 1e-12);
    assert_eq!(chi2_sf(0.0, 1), 1.0);
    // erfc(√50) = 1.5239706048320995e-23 (Python's math.erfc): the far tail keeps its
    // relative accuracy.
    assert!((chi2_sf(100.0, 1) / 1.523_970_604_832_099_5e-23 - 1.0).abs() < 1e-9);
}

#[test]
fn risk_groups_cut_at_numpys_quantiles() {
    let r = reference();
    let risk = numbers(&r["risk"]);
    let mut sorted = risk.clone();
    sorted.sort_by(f64::total_cmp);
    assert!((quantile(&sorted, 0.5) - r["median"].as_f64().unwrap()).abs() < 1e-12);
    let tertiles = numbers(&r["tertiles"]);
    assert!((quantile(&sorted, 1.0 / 3.0) - tertiles[0]).abs() < 1e-12);
    assert!((quantile(&sorted, 2.0 / 3.0) - tertiles[1]).abs() < 1e-12);
    // Above the median (0.3) is group 1; the three risks equal to it stay in group 0.
    assert_eq!(risk_groups(&risk, 2), [0, 0, 1, 0, 1, 0, 1, 0, 0]);
    assert_eq!(risk_groups(&risk, 3), [1, 0, 2, 1, 2, 0, 2, 0, 1]);
}

#[test]
fn bootstrap_intervals_are_reproducible_and_hold_the_estimate() {
    let time: Vec<f64> = (0..40).map(|i| (i * 7 % 23) as f64 + 1.0).collect();
    let event: Vec<bool> = (0..40).map(|i| i % 3 != 0).collect();
    let risk: Vec<f64> = time
        .iter()
        .enumerate()
        .map(|(i, t)| -t + (i % 5) as f64)
        .collect();
    let c = concordance_index(&event, &time, &risk).unwrap();
    let stat = |idx: &[usize]| {
        let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let e: Vec<bool> = idx.iter().map(|&i| event[i]).collect();
        concordance_index(&e, &pick(&time), &pick(&risk))
    };
    let ci = bootstrap_ci(40, 500, 7, stat).unwrap();
    assert_eq!(
        Some(ci),
        bootstrap_ci(40, 500, 7, stat),
        "same seed, same interval"
    );
    assert_ne!(Some(ci), bootstrap_ci(40, 500, 8, stat));
    assert!(ci[0] <= c && c <= ci[1], "{ci:?} holds {c}");
    assert!(ci[1] - ci[0] > 0.01);
    // A perfect separation stays perfect in every resample with both classes.
    let scores = [0.1, 0.2, 0.3, 0.8, 0.9, 0.95];
    let positive = [false, false, false, true, true, true];
    let auc = |idx: &[usize]| {
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        let p: Vec<bool> = idx.iter().map(|&i| positive[i]).collect();
        binary_auc(&s, &p)
    };
    assert_eq!(bootstrap_ci(6, 200, 1, auc), Some([1.0, 1.0]));
}

#[test]
fn kaplan_meier_matches_lifelines() {
    let r = reference();
    let case = &r["cases"]["two_groups"];
    let time = numbers(&case["time"]);
    let event: Vec<bool> = numbers(&case["event"]).iter().map(|&e| e == 1.0).collect();
    let km = kaplan_meier(&time, &event);
    let want = &r["km"];
    assert_eq!(km.times, numbers(&want["times"]));
    for (name, got) in [
        ("survival", &km.survival),
        ("lower", &km.lower),
        ("upper", &km.upper),
    ] {
        for (g, w) in got.iter().zip(numbers(&want[name])) {
            assert!((g - w).abs() < 1e-9, "{name}: {got:?} vs {}", want[name]);
        }
    }
    let at_risk: Vec<usize> = numbers(&want["at_risk"])
        .iter()
        .map(|&n| n as usize)
        .collect();
    assert_eq!(km.at_risk, at_risk);
}

#[test]
fn roc_points_by_hand() {
    // Scores 0.8 (+), 0.4 (+), 0.4 (−), 0.1 (−): the tie at 0.4 moves both rates at once.
    let points =
        med_crossvit::eval::metrics::roc_points(&[0.8, 0.4, 0.4, 0.1], &[true, true, false, false]);
    assert_eq!(points, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
}

fn ipcw_reference() -> serde_json::Value {
    let path = common::manifest_dir().join("tests/fixtures/stats/ipcw_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-9,
        "{what}: {got} vs scikit-survival's {want}"
    );
}

#[test]
fn weighted_survival_metrics_match_scikit_survival() {
    use med_crossvit::eval::metrics::{
        Censoring, concordance_index_ipcw, evaluation_times, ipcw_time_metrics,
    };
    let r = ipcw_reference();
    let cases = r["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 4);
    for (name, c) in cases {
        let flags =
            |v: &serde_json::Value| -> Vec<bool> { numbers(v).iter().map(|&e| e == 1.0).collect() };
        let censoring = Censoring::fit(&numbers(&c["train_time"]), &flags(&c["train_event"]));
        let (time, event) = (numbers(&c["time"]), flags(&c["event"]));
        let times = evaluation_times(&time, &event);
        assert_eq!(times, numbers(&c["times"]), "{name}: evaluation times");
        let risk = numbers(&c["risk"]);
        close(
            concordance_index_ipcw(&censoring, &event, &time, &risk).unwrap(),
            c["c_index_ipcw"].as_f64().unwrap(),
            &format!("{name}: c_index_ipcw"),
        );
        let survival: Vec<Vec<f64>> = numbers(&c["rate"])
            .iter()
            .map(|rate| times.iter().map(|t| (-rate * t).exp()).collect())
            .collect();
        let m = ipcw_time_metrics(&censoring, &event, &time, &times, &survival);
        for (k, want) in numbers(&c["td_auc"]).into_iter().enumerate() {
            close(m.auc[k].unwrap(), want, &format!("{name}: td_auc[{k}]"));
        }
        close(
            m.mean_auc.unwrap(),
            c["td_auc_mean"].as_f64().unwrap(),
            &format!("{name}: td_auc_mean"),
        );
        close(
            m.ibs.unwrap(),
            c["ibs"].as_f64().unwrap(),
            &format!("{name}: ibs"),
        );
        // Patients past the censoring estimate's last time are counted.
        let last = numbers(&c["train_time"]).into_iter().fold(0.0, f64::max);
        assert_eq!(
            m.beyond,
            time.iter().filter(|&&t| t > last).count(),
            "{name}"
        );
        assert_eq!(m.beyond > 0, name == "beyond" || name == "zero", "{name}");
    }
}

#[test]
fn censoring_distribution_by_hand() {
    use med_crossvit::eval::metrics::Censoring;
    // Times 1 (event), 2 (censored), 2 (event), 3 (censored), 4 (event). At 2 the event
    // leaves first: 1 − 1/(4 − 1) = 2/3; at 3: 1 − 1/(2 − 0) → 1/3; after 4 it stays.
    let g = Censoring::fit(
        &[1.0, 2.0, 2.0, 3.0, 4.0],
        &[true, false, true, false, true],
    );
    for (t, want) in [
        (0.5, 1.0),
        (1.0, 1.0),
        (2.0, 2.0 / 3.0),
        (2.5, 2.0 / 3.0),
        (3.0, 1.0 / 3.0),
        (9.0, 1.0 / 3.0),
    ] {
        assert!((g.at(t) - want).abs() < 1e-12, "G({t})");
    }
    // Every time an event: no censoring.
    let g = Censoring::fit(&[1.0, 2.0], &[true, true]);
    assert_eq!((g.at(0.0), g.at(5.0)), (1.0, 1.0));
}

#[test]
fn model_survival_is_constant_within_a_bin() {
    use med_crossvit::eval::survival_at;
    let bins = med_crossvit::data::TimeBins {
        edges: vec![0.0, 10.0, 20.0, 30.0],
    };
    let hazards = [0.1, 0.5, 0.2];
    for (t, want) in [
        (0.0, 0.9),
        (9.9, 0.9),
        (10.0, 0.45),
        (19.0, 0.45),
        (25.0, 0.36),
        (99.0, 0.36),
    ] {
        assert!(
            (survival_at(&hazards, &bins, t) - want).abs() < 1e-12,
            "S({t})"
        );
    }
}

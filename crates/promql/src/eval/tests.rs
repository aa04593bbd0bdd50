use super::*;

#[test]
fn quantile_interpolates() {
    let mut v = vec![4.0, 1.0, 3.0, 2.0];
    assert_eq!(quantile(0.5, &mut v), 2.5);
    assert_eq!(quantile(0.0, &mut v), 1.0);
    assert_eq!(quantile(-1.0, &mut v), f64::NEG_INFINITY);
    assert_eq!(quantile(2.0, &mut v), f64::INFINITY);
    assert!(quantile(f64::NAN, &mut v).is_nan());
}

#[test]
fn window_slides_left_open() {
    let r = RangeVal { series: Vec::new(), range: 10, offset: 0, at: None };
    let s: Vec<Sample> = (0..5).map(|i| Sample::new(i * 5, i as f64)).collect();
    let steps = Steps { start: 10, end: 20, step: 5, n: 3 };
    let mut got = Vec::new();
    r.for_each_window(&s, &steps, |_, _, w| got.push(w.iter().map(|x| x.t).collect::<Vec<_>>()));
    assert_eq!(got, vec![vec![5, 10], vec![10, 15], vec![15, 20]]);
}

#[test]
fn subquery_steps_align_to_absolute_multiples() {
    let sq = match promql_parser::parser::parse("x[5m:1m]").unwrap() {
        Expr::Subquery(sq) => sq,
        other => panic!("{other:?}"),
    };
    let outer = Steps { start: 630_000, end: 630_000, step: 1, n: 1 };
    let inner = subquery_steps(&sq, &outer, 60_000, 0, 0);
    // Window (330s, 630s]: steps 360s..=600s.
    assert_eq!((inner.start, inner.step, inner.n), (360_000, 60_000, 5));
}

#[test]
fn merging_rejects_collisions_at_one_step() {
    let a = VSeries { labels: Labels::empty(), drop_name: false, vals: vec![Some(1.0), None] };
    let b = VSeries { labels: Labels::empty(), drop_name: false, vals: vec![None, Some(2.0)] };
    let m = merge_series(vec![a.clone(), b]).unwrap();
    assert_eq!(m[0].vals, vec![Some(1.0), Some(2.0)]);
    assert!(merge_series(vec![a.clone(), a]).is_err());
}

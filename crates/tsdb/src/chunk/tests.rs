use proptest::prelude::*;

use super::*;

fn roundtrip(samples: &[Sample]) -> Vec<Sample> {
    let mut a = XorAppender::new();
    for s in samples {
        a.append(s.t, s.v);
    }
    let bytes = a.finish();
    decode_all(&bytes).expect("decodes")
}

#[test]
fn empty_chunk_decodes_to_nothing() {
    assert_eq!(decode_all(&XorAppender::new().finish()).unwrap(), vec![]);
}

#[test]
fn regular_series_compresses_well() {
    let samples: Vec<Sample> = (0..120).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, 42.0)).collect();
    let mut a = XorAppender::new();
    for s in &samples {
        a.append(s.t, s.v);
    }
    // Constant values and a fixed interval cost two bits per sample after the first two.
    assert!(a.bytes().len() < 60, "{} bytes", a.bytes().len());
    assert_eq!(roundtrip(&samples), samples);
}

#[test]
fn nan_payloads_and_stale_markers_are_bit_exact() {
    let weird = f64::from_bits(0x7ff8_dead_beef_0001);
    let samples = vec![
        Sample::new(0, 1.0),
        Sample::new(1000, strata_model::stale_nan()),
        Sample::new(2000, f64::NAN),
        Sample::new(3000, weird),
        Sample::new(4000, f64::INFINITY),
        Sample::new(5000, -0.0),
    ];
    assert_eq!(roundtrip(&samples), samples);
}

#[test]
fn truncated_chunk_is_an_error_not_a_panic() {
    let mut a = XorAppender::new();
    for i in 0..10 {
        a.append(i * 1000, i as f64 * 1.5);
    }
    let bytes = a.finish();
    for cut in 0..bytes.len() {
        let r = XorIter::new(&bytes[..cut]).map(|it| it.collect::<Result<Vec<_>, _>>());
        assert!(matches!(r, Err(_) | Ok(Err(_))), "cut at {cut} decoded");
    }
}

fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
    let value = prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1000i64..1000).prop_map(|x| x as f64),
        (0u32..100).prop_map(|x| x as f64 / 10.0),
    ];
    (any::<i32>(), prop::collection::vec((0i64..=1 << 40, value), 0..300)).prop_map(|(start, steps)| {
        let mut t = i64::from(start);
        steps
            .into_iter()
            .map(|(d, v)| {
                t += d.max(1) % 100_000 + if d % 7 == 0 { d } else { 0 };
                Sample::new(t, v)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn roundtrips_bit_exact(samples in arb_samples()) {
        prop_assert_eq!(roundtrip(&samples), samples);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(it) = XorIter::new(&bytes) {
            for _ in it.take(1000) {}
        }
    }
}

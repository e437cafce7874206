//! Which simulcast layer of each source a receiver gets, within the bandwidth estimated toward it. The way
//! Jitsi's bandwidth allocator does it: sources in priority order (the stage first, then recent speakers),
//! everyone first gets the lowest layer that is on offer, then the stage is raised greedily to the most its
//! tile can show, then the others one layer at a time. A tile gets the smallest layer at least as tall as it is
//! in device pixels (a 310-pixel tile 360p, a 626-pixel stage 720p; a 112-pixel thumbnail never more than
//! 180p), and sources past last-N get no video.
//!
//! Two things keep it steady when the estimate hovers near what is being sent (an SFU's estimate only grows
//! as fast as its probes): a source already forwarded moves to another layer only with a tenth to spare, so
//! the choice does not flap between two layers (each flip costs a keyframe), while what is chosen never
//! adds up to more than the budget (forwarded media is unpaced: more would overrun the receiver's link);
//! and the allocation says what it would take for the next step up and for everything the tiles could
//! use, which the caller gives the bandwidth estimator as the rates to probe toward.

/// A simulcast layer, from the RIDs `q`, `h` and `f`; a publisher without simulcast sends only `High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Quarter resolution (180p of 720p).
    Low = 0,
    /// Half resolution.
    Medium = 1,
    /// Full resolution.
    High = 2,
}

impl Layer {
    /// Every layer, lowest first.
    pub const ALL: [Self; 3] = [Self::Low, Self::Medium, Self::High];

    /// The layer a RID names; no RID is a single-layer stream.
    pub fn from_rid(rid: Option<&str>) -> Option<Self> {
        match rid {
            None | Some("f") => Some(Self::High),
            Some("h") => Some(Self::Medium),
            Some("q") => Some(Self::Low),
            Some(_) => None,
        }
    }

    /// Its index in per-layer arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its height when the full layer is `top` pixels high.
    fn height(self, top: u32) -> u32 {
        match self {
            Self::Low => top / 4,
            Self::Medium => top / 2,
            Self::High => top,
        }
    }
}

/// One source a receiver could get video from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// On the receiver's stage (pinned, or the dominant speaker when nothing is pinned).
    pub on_stage: bool,
    /// The height of the receiver's tile for it, when the receiver said; 0 switches it off.
    pub requested_height: Option<u32>,
    /// Measured bitrate of each layer the source currently sends, by [`Layer::index`]; `None` for layers
    /// not arriving.
    pub rates: [Option<u64>; 3],
    /// The layer being forwarded now, if any.
    pub current: Option<Layer>,
}

impl Candidate {
    /// What a layer costs this receiver: its rate, and a tenth more to move to it from another layer.
    fn cost(&self, layer: Layer) -> Option<u64> {
        let rate = self.rates[layer.index()]?;
        Some(match self.current {
            Some(current) if current != layer => rate + rate / SWITCH_MARGIN,
            _ => rate,
        })
    }
}

/// Moving a forwarded source to another layer needs `1 / SWITCH_MARGIN` of its rate to spare.
const SWITCH_MARGIN: u64 = 10;

/// The layers chosen, and the rates for the bandwidth estimator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The layer each candidate gets (in the order given), `None` for no video.
    pub layers: Vec<Option<Layer>>,
    /// The measured rate of what was chosen, bits per second.
    pub rate: u64,
    /// The rate with the next step up that did not fit (the estimator's minimum to sustain), or `rate`.
    pub next_step: u64,
    /// The rate if the budget were unlimited: everything the tiles could use.
    pub ideal: u64,
}

/// What the allocator needs beyond the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The bandwidth estimated toward the receiver, in bits per second.
    pub budget: u64,
    /// At most this many sources get video; the rest get none.
    pub last_n: usize,
    /// The full layer's height (720 or 1080).
    pub top_height: u32,
}

/// Chooses within the budget, and says what more would take.
pub fn allocate(candidates: &[Candidate], limits: Limits) -> Allocation {
    let layers = choose(candidates, limits);
    let ideal_layers = choose(candidates, Limits { budget: u64::MAX, ..limits });
    let measured = |layers: &[Option<Layer>]| -> u64 {
        candidates
            .iter()
            .zip(layers)
            .filter_map(|(candidate, layer)| layer.and_then(|layer| candidate.rates[layer.index()]))
            .sum()
    };
    let rate = measured(&layers);
    let ideal = measured(&ideal_layers);
    // The next step: the first candidate, in priority order, the unlimited choice would give more.
    let next_step = candidates
        .iter()
        .zip(layers.iter().zip(&ideal_layers))
        .find_map(|(candidate, (chosen, ideal))| {
            (chosen < ideal).then(|| {
                let now = chosen.and_then(|layer| candidate.rates[layer.index()]).unwrap_or(0);
                let next = Layer::ALL
                    .into_iter()
                    .find(|layer| {
                        Some(*layer) > *chosen && Some(*layer) <= *ideal && candidate.rates[layer.index()].is_some()
                    })
                    .and_then(|layer| candidate.rates[layer.index()])
                    .unwrap_or(now);
                rate - now + next
            })
        })
        .unwrap_or(rate);
    Allocation { layers, rate, next_step, ideal }
}

/// The layer each candidate gets (in the order given, which is priority order), `None` for no video.
fn choose(candidates: &[Candidate], limits: Limits) -> Vec<Option<Layer>> {
    let ceilings: Vec<Option<Layer>> = candidates
        .iter()
        .enumerate()
        .map(|(rank, candidate)| if rank < limits.last_n { ceiling(candidate, limits.top_height) } else { None })
        .collect();
    let mut chosen: Vec<Option<Layer>> = vec![None; candidates.len()];
    let mut spent = 0u64;
    // Everyone first gets the lowest layer on offer, in priority order.
    for (index, candidate) in candidates.iter().enumerate() {
        let Some(ceiling) = ceilings[index] else { continue };
        if let Some(lowest) =
            Layer::ALL.into_iter().find(|layer| *layer <= ceiling && candidate.rates[layer.index()].is_some())
        {
            let rate = candidate.cost(lowest).unwrap_or_default();
            if spent.saturating_add(rate) <= limits.budget {
                spent += rate;
                chosen[index] = Some(lowest);
            }
        }
    }
    // The stage goes as high as it fits and its tile shows; then the others step by step.
    for index in 0..candidates.len() {
        if candidates[index].on_stage {
            while raise(candidates, &ceilings, &mut chosen, &mut spent, index, limits.budget) {}
        }
    }
    loop {
        let mut raised = false;
        for index in 0..candidates.len() {
            raised |= raise(candidates, &ceilings, &mut chosen, &mut spent, index, limits.budget);
        }
        if !raised {
            break;
        }
    }
    chosen
}

/// The highest layer the receiver's tile can use, or a lower one that arrives when it does not.
fn ceiling(candidate: &Candidate, top_height: u32) -> Option<Layer> {
    let wanted = match candidate.requested_height {
        Some(0) => return None,
        // Scaling a smaller layer up to the tile would blur it: the first layer at least as tall.
        Some(height) => Layer::ALL.into_iter().find(|layer| layer.height(top_height) >= height).unwrap_or(Layer::High),
        None if candidate.on_stage => Layer::High,
        None => Layer::Low,
    };
    // A single-layer publisher only has its one layer: the tile gets it rather than nothing.
    Layer::ALL
        .into_iter()
        .rev()
        .filter(|layer| candidate.rates[layer.index()].is_some())
        .find(|layer| *layer <= wanted)
        .or_else(|| Layer::ALL.into_iter().find(|layer| candidate.rates[layer.index()].is_some()))
}

/// Moves one candidate up to its next arriving layer if that fits; whether it did.
fn raise(
    candidates: &[Candidate],
    ceilings: &[Option<Layer>],
    chosen: &mut [Option<Layer>],
    spent: &mut u64,
    index: usize,
    budget: u64,
) -> bool {
    let (Some(current), Some(ceiling)) = (chosen[index], ceilings[index]) else { return false };
    let candidate = &candidates[index];
    let Some(next) = Layer::ALL
        .into_iter()
        .find(|layer| *layer > current && *layer <= ceiling && candidate.rates[layer.index()].is_some())
    else {
        return false;
    };
    let (now, then) = (candidate.cost(current).unwrap_or_default(), candidate.cost(next).unwrap_or_default());
    let cost = then.saturating_sub(now);
    if spent.saturating_add(cost) > budget {
        return false;
    }
    *spent += cost;
    chosen[index] = Some(next);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMULCAST: [Option<u64>; 3] = [Some(300_000), Some(900_000), Some(3_300_000)];
    const LIMITS: Limits = Limits { budget: 20_000_000, last_n: 25, top_height: 720 };

    fn source(on_stage: bool) -> Candidate {
        Candidate { on_stage, requested_height: None, rates: SIMULCAST, current: None }
    }

    #[test]
    fn the_stage_gets_high_and_the_other_nine_low() {
        let mut meeting = vec![source(true)];
        meeting.extend(std::iter::repeat_n(source(false), 8));
        let layers = allocate(&meeting, LIMITS).layers;
        assert_eq!(layers[0], Some(Layer::High));
        assert!(layers[1..].iter().all(|layer| *layer == Some(Layer::Low)));
    }

    #[test]
    fn a_tight_budget_keeps_thumbnails_and_lowers_the_stage() {
        let mut meeting = vec![source(true)];
        meeting.extend(std::iter::repeat_n(source(false), 8));
        // Nine thumbnails (2.7 Mbit/s) and the stage at 360p fit in 3.4 Mbit/s, 720p does not.
        let layers = allocate(&meeting, Limits { budget: 3_400_000, ..LIMITS }).layers;
        assert_eq!(layers[0], Some(Layer::Medium));
        assert!(layers[1..].iter().all(|layer| *layer == Some(Layer::Low)));
        // Below that, the lowest-priority thumbnails go first.
        let layers = allocate(&meeting, Limits { budget: 1_000_000, ..LIMITS }).layers;
        assert_eq!(layers.iter().filter(|layer| layer.is_some()).count(), 3);
        assert_eq!(layers[0], Some(Layer::Low));
    }

    #[test]
    fn tiles_get_what_their_size_shows_and_no_more() {
        let tile = |height| Candidate { requested_height: Some(height), ..source(false) };
        let stage = Candidate { requested_height: Some(180), ..source(true) };
        let tiles = [stage, tile(360), tile(720), tile(1080), tile(100), tile(0), tile(310), tile(626), tile(181)];
        let layers = allocate(&tiles, Limits { budget: 100_000_000, ..LIMITS }).layers;
        let (low, medium, high) = (Some(Layer::Low), Some(Layer::Medium), Some(Layer::High));
        assert_eq!(layers, vec![low, medium, high, high, low, None, medium, high, medium]);
    }

    #[test]
    fn layers_that_do_not_arrive_are_not_chosen() {
        let no_high = Candidate { rates: [Some(300_000), Some(900_000), None], ..source(true) };
        let single = Candidate { rates: [None, None, Some(1_500_000)], ..source(false) };
        assert_eq!(allocate(&[no_high, single], LIMITS).layers, vec![Some(Layer::Medium), Some(Layer::High)]);
        let silent = Candidate { rates: [None; 3], ..source(true) };
        assert_eq!(allocate(&[silent], LIMITS).layers, vec![None]);
    }

    #[test]
    fn sources_past_last_n_get_no_video() {
        let meeting = vec![source(true), source(false), source(false), source(false)];
        let layers = allocate(&meeting, Limits { last_n: 2, ..LIMITS }).layers;
        assert_eq!(layers, vec![Some(Layer::High), Some(Layer::Low), None, None]);
    }

    #[test]
    fn a_layer_being_forwarded_is_kept_while_the_estimate_hovers_just_below_it() {
        let stage = |current| Candidate { current, ..source(true) };
        let thumbnail = Candidate { current: Some(Layer::Low), ..source(false) };
        // 3.8 Mbit/s: not enough to move up to the 3.3 Mbit/s top layer next to a 0.3 thumbnail...
        let taking = allocate(&[stage(Some(Layer::Medium)), thumbnail], Limits { budget: 3_800_000, ..LIMITS });
        assert_eq!(taking.layers, vec![Some(Layer::Medium), Some(Layer::Low)]);
        // ...but enough to keep it.
        let keeping = allocate(&[stage(Some(Layer::High)), thumbnail], Limits { budget: 3_800_000, ..LIMITS });
        assert_eq!(keeping.layers, vec![Some(Layer::High), Some(Layer::Low)]);
        // Never more than the budget, kept or not.
        let tight = allocate(&[stage(Some(Layer::High)), thumbnail], Limits { budget: 3_500_000, ..LIMITS });
        assert_eq!(tight.layers, vec![Some(Layer::Medium), Some(Layer::Low)]);
    }

    #[test]
    fn the_allocation_says_what_to_probe_for() {
        let meeting = [source(true), source(false), source(false)];
        let tight = allocate(&meeting, Limits { budget: 2_000_000, ..LIMITS });
        assert_eq!(tight.layers, vec![Some(Layer::Medium), Some(Layer::Low), Some(Layer::Low)]);
        assert_eq!(tight.rate, 1_500_000);
        assert_eq!(tight.next_step, 3_900_000, "the stage's top layer instead of its middle one");
        assert_eq!(tight.ideal, 3_900_000);
        let ample = allocate(&meeting, LIMITS);
        assert_eq!((ample.rate, ample.next_step, ample.ideal), (3_900_000, 3_900_000, 3_900_000));
    }

    #[test]
    fn rids_name_layers() {
        assert_eq!(Layer::from_rid(Some("q")), Some(Layer::Low));
        assert_eq!(Layer::from_rid(Some("h")), Some(Layer::Medium));
        assert_eq!(Layer::from_rid(Some("f")), Some(Layer::High));
        assert_eq!(Layer::from_rid(None), Some(Layer::High));
        assert_eq!(Layer::from_rid(Some("x")), None);
    }
}

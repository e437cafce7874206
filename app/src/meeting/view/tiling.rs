//! Where each tile goes: a grid that gives every tile the largest size the area allows, or a stage with a
//! filmstrip beside it (landscape) or under it (portrait). Pure arithmetic, so the rules are tested natively;
//! the room measures its area and places tiles absolutely, so tiles never overlap and the page never scrolls.

/// Space between tiles, in CSS pixels.
pub(super) const GAP: f64 = 8.0;
/// Camera video's shape.
const WIDE: f64 = 16.0 / 9.0;
/// The tallest a grid tile gets (width / height) when the area is taller than wide, as on a phone: video is
/// cropped to fill it rather than floating in bars.
const TALL: f64 = 3.0 / 4.0;

/// A tile's box inside the video area, in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Rect {
    /// Its inline style. A box not placed yet (the area unmeasured) is not shown, so a new tile appears where
    /// it belongs instead of sliding in from the corner.
    pub fn style(self) -> String {
        if self.width <= 0.0 || self.height <= 0.0 {
            return "display:none".to_owned();
        }
        format!("left:{:.0}px;top:{:.0}px;width:{:.0}px;height:{:.0}px", self.x, self.y, self.width, self.height)
    }
}

/// `count` tiles in a `width` × `height` area: the column count that makes tiles largest, each tile its cell
/// (between 3:4 and 16:9), the grid centred and a short last row centred too.
pub fn grid(count: usize, width: f64, height: f64) -> Vec<Rect> {
    if count == 0 || width <= 0.0 || height <= 0.0 {
        return Vec::new();
    }
    let best = (1..=count)
        .filter_map(|columns| {
            let rows = count.div_ceil(columns);
            let cell_width = (width - GAP * (columns - 1) as f64) / columns as f64;
            let cell_height = (height - GAP * (rows - 1) as f64) / rows as f64;
            (cell_width > 0.0 && cell_height > 0.0).then(|| {
                // Judged by the 16:9 picture each cell can show whole.
                let shown = cell_width.min(cell_height * WIDE);
                (columns, rows, cell_width, cell_height, shown)
            })
        })
        .max_by(|a, b| a.4.total_cmp(&b.4));
    let Some((columns, rows, cell_width, cell_height, _)) = best else { return Vec::new() };
    let tile_height = cell_height.min(cell_width / TALL);
    let tile_width = cell_width.min(tile_height * WIDE);
    let top = (height - (rows as f64 * tile_height + GAP * (rows - 1) as f64)) / 2.0;
    (0..count)
        .map(|index| {
            let (row, column) = (index / columns, index % columns);
            let in_row = (count - row * columns).min(columns);
            let left = (width - (in_row as f64 * tile_width + GAP * (in_row - 1) as f64)) / 2.0;
            Rect {
                x: left + column as f64 * (tile_width + GAP),
                y: top + row as f64 * (tile_height + GAP),
                width: tile_width,
                height: tile_height,
            }
        })
        .collect()
}

/// One tile on the stage and `others` small ones in a filmstrip: a column at the right when the area is
/// landscape, a row at the bottom when it is portrait. The stage comes first in the answer.
pub fn stage(others: usize, width: f64, height: f64) -> Vec<Rect> {
    if width <= 0.0 || height <= 0.0 {
        return Vec::new();
    }
    if others == 0 {
        return vec![Rect { x: 0.0, y: 0.0, width, height }];
    }
    let n = others as f64;
    let mut rects = Vec::with_capacity(others + 1);
    if width >= height {
        let strip = (width * 0.18).clamp(120.0, 240.0);
        let thumb_height = (strip / WIDE).min((height - GAP * (n - 1.0)) / n).max(0.0);
        let thumb_width = thumb_height * WIDE;
        let stage_width = width - strip - GAP;
        rects.push(Rect { x: 0.0, y: 0.0, width: stage_width, height });
        let top = (height - (n * thumb_height + GAP * (n - 1.0))) / 2.0;
        let left = stage_width + GAP + (strip - thumb_width) / 2.0;
        rects.extend((0..others).map(|index| Rect {
            x: left,
            y: top + index as f64 * (thumb_height + GAP),
            width: thumb_width,
            height: thumb_height,
        }));
    } else {
        let strip = (height * 0.15).clamp(72.0, 120.0);
        let thumb_width = (strip * WIDE).min((width - GAP * (n - 1.0)) / n).max(0.0);
        let thumb_height = thumb_width / WIDE;
        let stage_height = height - strip - GAP;
        rects.push(Rect { x: 0.0, y: 0.0, width, height: stage_height });
        let left = (width - (n * thumb_width + GAP * (n - 1.0))) / 2.0;
        let top = stage_height + GAP + (strip - thumb_height) / 2.0;
        rects.extend((0..others).map(|index| Rect {
            x: left + index as f64 * (thumb_width + GAP),
            y: top,
            width: thumb_width,
            height: thumb_height,
        }));
    }
    rects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: Rect, b: Rect) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    /// Whether any two boxes overlap or one leaves the area: what the layout promises never happens.
    fn misplaced(rects: &[Rect], width: f64, height: f64) -> bool {
        let outside = |rect: &Rect| {
            rect.x < -0.5 || rect.y < -0.5 || rect.x + rect.width > width + 0.5 || rect.y + rect.height > height + 0.5
        };
        rects.iter().any(outside)
            || rects
                .iter()
                .enumerate()
                .any(|(index, rect)| rects[index + 1..].iter().any(|other| overlap(*rect, *other)))
    }

    const AREAS: [(f64, f64); 4] = [(1280.0, 680.0), (960.0, 680.0), (390.0, 700.0), (844.0, 300.0)];

    #[test]
    fn one_tile_fills_a_desktop_area_at_16_9() {
        let rects = grid(1, 1280.0, 680.0);
        assert_eq!(rects.len(), 1);
        assert!((rects[0].height - 680.0).abs() < 0.01);
        assert!((rects[0].width - 680.0 * WIDE).abs() < 0.01);
        assert!((rects[0].x - (1280.0 - 680.0 * WIDE) / 2.0).abs() < 0.01, "centred");
    }

    #[test]
    fn two_people_on_a_phone_stack_and_fill_the_width() {
        let rects = grid(2, 390.0, 700.0);
        assert_eq!(rects[0].x, rects[1].x, "one column");
        assert!((rects[0].width - 390.0).abs() < 0.01);
        assert!(rects[0].height > 390.0 / WIDE, "taller than 16:9, cropped to fill");
    }

    #[test]
    fn ten_on_a_desktop_take_several_columns_and_centre_the_short_row() {
        let rects = grid(10, 1280.0, 680.0);
        let columns = rects.iter().filter(|rect| (rect.y - rects[0].y).abs() < 0.01).count();
        assert!((3..=4).contains(&columns), "{columns} columns");
        let last = rects.last().unwrap();
        let last_row: Vec<_> = rects.iter().filter(|rect| (rect.y - last.y).abs() < 0.01).collect();
        let left = last_row.first().unwrap().x;
        let right = 1280.0 - (last.x + last.width);
        assert!((left - right).abs() < 1.0, "the short row is centred: {left} vs {right}");
    }

    #[test]
    fn no_layout_overlaps_or_leaves_its_area() {
        for (width, height) in AREAS {
            for count in 1..=25 {
                assert!(!misplaced(&grid(count, width, height), width, height), "grid {count} in {width}x{height}");
                assert!(
                    !misplaced(&stage(count - 1, width, height), width, height),
                    "stage {count} in {width}x{height}"
                );
            }
        }
    }

    #[test]
    fn the_stage_keeps_most_of_the_area_and_the_strip_follows_the_shape() {
        let landscape = stage(3, 1280.0, 680.0);
        assert!(landscape[0].width > 1000.0 && landscape[0].height == 680.0);
        assert!(landscape[1..].iter().all(|thumb| thumb.x > landscape[0].width), "a column at the right");
        let portrait = stage(3, 390.0, 700.0);
        assert!(portrait[0].width == 390.0 && portrait[0].height > 550.0);
        assert!(portrait[1..].iter().all(|thumb| thumb.y > portrait[0].height), "a row at the bottom");
    }

    #[test]
    fn an_unplaced_tile_is_hidden_and_a_placed_one_positioned() {
        assert_eq!(Rect::default().style(), "display:none");
        let placed = Rect { x: 10.4, y: 20.0, width: 640.0, height: 360.0 };
        assert_eq!(placed.style(), "left:10px;top:20px;width:640px;height:360px");
    }

    #[test]
    fn an_unmeasured_area_places_nothing() {
        assert!(grid(3, 0.0, 0.0).is_empty());
        assert!(stage(3, 0.0, 500.0).is_empty());
        assert!(grid(0, 800.0, 600.0).is_empty());
    }
}

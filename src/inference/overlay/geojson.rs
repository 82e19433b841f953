//! Tiles as a GeoJSON `FeatureCollection` that QuPath imports as detection objects
//! (File › Import objects from file, or drag the file onto the open slide).
//!
//! Each tile is a `Feature` whose geometry is its square as a closed `Polygon` in level-0
//! pixels (QuPath's image coordinates), with properties QuPath reads: `objectType:
//! "detection"`, `name`, `color` (`[r, g, b]`, the heatmap's colour), and `measurements` (an
//! object of numbers: `attention score`, `attention rank`); `score`, `rank` and `tile` are
//! also plain properties for other GeoJSON readers.

use serde_json::json;

use super::placement::Placement;
use super::render::colour_at;

/// One tile of the collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileFeature {
    /// Row of the tile in the slide's feature file.
    pub tile: usize,
    /// Its attention score.
    pub score: f64,
    /// Its rank by score, 1 the highest.
    pub rank: usize,
    /// Its normalized score on the colour map, in [0, 1].
    pub colour: f64,
}

/// The collection of `tiles` (same order as `placement.corners`) as GeoJSON text, built one
/// feature at a time (no tree of the whole collection: a slide has tens of thousands of
/// tiles).
pub fn collection(placement: &Placement, tiles: &[TileFeature]) -> String {
    let s = placement.side;
    let mut text = String::from(r#"{"type":"FeatureCollection","features":["#);
    for (i, (&[x, y], t)) in placement.corners.iter().zip(tiles).enumerate() {
        if i > 0 {
            text.push(',');
        }
        let feature = json!({
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]],
            },
            "properties": {
                "objectType": "detection",
                "name": format!("tile {}", t.tile),
                "color": colour_at(t.colour),
                "tile": t.tile,
                "score": t.score,
                "rank": t.rank,
                "measurements": {
                    "attention score": t.score,
                    "attention rank": t.rank,
                },
            },
        });
        text.push_str(&feature.to_string());
    }
    text.push_str("]}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tile_is_its_closed_square_with_score_and_rank() {
        let placement = Placement {
            corners: vec![[100.0, 200.0], [0.0, 0.0]],
            side: 50.0,
            how: String::new(),
        };
        let tiles = [
            TileFeature {
                tile: 7,
                score: 0.25,
                rank: 1,
                colour: 1.0,
            },
            TileFeature {
                tile: 2,
                score: 0.125,
                rank: 2,
                colour: 0.0,
            },
        ];
        let v: serde_json::Value = serde_json::from_str(&collection(&placement, &tiles)).unwrap();
        let f = &v["features"][0];
        assert_eq!(v["type"], "FeatureCollection");
        assert_eq!(v["features"].as_array().unwrap().len(), 2);
        assert_eq!(v["features"][1]["properties"]["name"], "tile 2");
        assert_eq!(
            f["geometry"]["coordinates"],
            json!([[
                [100.0, 200.0],
                [150.0, 200.0],
                [150.0, 250.0],
                [100.0, 250.0],
                [100.0, 200.0]
            ]])
        );
        assert_eq!(f["properties"]["objectType"], "detection");
        assert_eq!(f["properties"]["measurements"]["attention score"], 0.25);
        assert_eq!(f["properties"]["rank"], 1);
        assert_eq!(f["properties"]["color"], json!([253, 231, 37]));
    }
}

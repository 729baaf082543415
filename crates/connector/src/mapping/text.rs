//! Text helpers for Omnisend's plain-text fields.

/// Truncates to at most `max` characters (not bytes), ending with `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// Plain text from a commercetools rich-text description: tags dropped (block tags become
/// spaces), the common entities decoded, whitespace collapsed.
///
/// Hand-written on purpose: descriptions are small HTML fragments and we need only their text;
/// an HTML renderer crate would add a large dependency for this one field.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c => text.push(c),
        }
    }
    let decoded = decode_entities(&text);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let decoded = tail.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &tail[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_removed_and_whitespace_collapsed() {
        assert_eq!(
            html_to_text("<p>Soft <b>cotton</b></p>\n<p>shirt</p>"),
            "Soft cotton shirt"
        );
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            html_to_text("Tom &amp; Jerry &#169; &lt;3 &unknown; &"),
            "Tom & Jerry © <3 &unknown; &"
        );
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate_chars("äöü", 3), "äöü");
        let t = truncate_chars("äöüß", 3);
        assert_eq!(t.chars().count(), 3);
        assert!(t.ends_with('…'));
    }
}

//! Date expressions: date parts, `$dateAdd`/`$dateSubtract`, `$dateFromParts`, `$dateFromString`,
//! `$dateToString`, `$dateToParts`, and the time zones they all take.

use super::*;

/// ISO-8601 with milliseconds and `Z`, as the server prints dates.
pub(crate) fn format_date(ms: i64) -> String {
    let p = DateParts::from_millis(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

/// Parses `YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z|±HH:MM]` (the common ISO forms).
pub(super) fn parse_date(s: &str) -> Option<bson::DateTime> {
    parse_date_zoned(s).map(|(ms, _)| bson::DateTime::from_millis(ms))
}

/// Time zone information found in a date string: the server refuses it together with a
/// `timezone` argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum StringZone {
    None,
    /// `±HH:MM`/`±HHMM` (timelib's zone type 1).
    Offset,
    /// `Z` (an abbreviation, timelib's zone type 2).
    Letter,
}

/// [`parse_date`] that also says which zone the string carried; without one, the result is
/// the wall-clock time read as UTC.
pub(super) fn parse_date_zoned(s: &str) -> Option<(i64, StringZone)> {
    let mut zone = StringZone::None;
    let s = s.trim();
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let mut dp = date.split('-');
    let year: i64 = dp.next()?.parse().ok()?;
    let month: i64 = dp.next()?.parse().ok()?;
    let day: i64 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let rest = rest.get(1..).unwrap_or("");
    if !rest.is_empty() {
        let (time, offset) = match rest.find(['Z', '+', '-']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let mut tp = time.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let m: i64 = tp.next()?.parse().ok()?;
        let sec: f64 = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0.0))?;
        ms += h * 3_600_000 + m * 60_000 + (sec * 1000.0).round() as i64;
        if let Some(o) = offset.strip_prefix(['+', '-']) {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let digits: String = o.chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() != 4 {
                return None;
            }
            let oh: i64 = digits[..2].parse().ok()?;
            let om: i64 = digits[2..].parse().ok()?;
            ms -= sign * (oh * 3_600_000 + om * 60_000);
            zone = StringZone::Offset;
        } else if offset == "Z" {
            zone = StringZone::Letter;
        } else if !offset.is_empty() {
            return None;
        }
    }
    Some((ms, zone))
}

pub(super) struct DateParts {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    day_of_week: i64,
    day_of_year: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateParts {
    fn from_millis(ms: i64) -> DateParts {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let mut year = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        if month <= 2 {
            year += 1;
        }
        DateParts {
            year,
            month,
            day,
            hour: rem / 3_600_000,
            minute: rem / 60_000 % 60,
            second: rem / 1000 % 60,
            millis: rem % 1000,
            // 1970-01-01 was a Thursday; the server numbers Sunday as 1.
            day_of_week: (days + 4).rem_euclid(7) + 1,
            day_of_year: days - days_from_civil(year, 1, 1) + 1,
        }
    }
}

impl DateParts {
    /// Monday = 1 ... Sunday = 7.
    fn iso_day_of_week(&self) -> i64 {
        (self.day_of_week + 5) % 7 + 1
    }

    /// Week of the year 0-53, weeks starting on Sunday (`%U`).
    fn week(&self) -> i64 {
        (self.day_of_year - 1 + 7 - (self.day_of_week - 1)) / 7
    }

    /// The ISO 8601 week-numbering year and week (`%G`, `%V`).
    fn iso_week(&self) -> (i64, i64) {
        let weeks_in = |y: i64| {
            // A year has 53 ISO weeks when it starts on a Thursday, or on a Wednesday in a
            // leap year.
            let jan1 = DateParts::from_millis(days_from_civil(y, 1, 1) * 86_400_000);
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let dow = jan1.iso_day_of_week();
            if dow == 4 || (leap && dow == 3) {
                53
            } else {
                52
            }
        };
        let week = (self.day_of_year - self.iso_day_of_week() + 10) / 7;
        if week < 1 {
            (self.year - 1, weeks_in(self.year - 1))
        } else if week > weeks_in(self.year) {
            (self.year + 1, 1)
        } else {
            (self.year, week)
        }
    }
}

pub(super) fn date_millis(v: &Option<Bson>) -> Result<i64> {
    match v {
        Some(Bson::DateTime(d)) => Ok(d.timestamp_millis()),
        Some(Bson::Timestamp(t)) => Ok(t.time as i64 * 1000),
        Some(Bson::ObjectId(o)) => Ok(o.timestamp().timestamp_millis()),
        other => Err(CommandError::new(
            16006,
            format!("can't convert from BSON type {} to Date", tn(other)),
        )),
    }
}

/// A resolved `timezone` argument, as the server's `TimeZoneDatabase::getTimeZone`: an Olson
/// identifier of the bundled tz database, matched exactly (case-sensitive, as the server's
/// map), else a UTC offset `±HH`, `±HHMM` or `±HH:MM`.
#[derive(Debug, Clone)]
pub(super) enum Tz {
    /// Seconds east of UTC.
    Offset(i64),
    Named(jiff::tz::TimeZone),
}

impl Tz {
    pub(super) const UTC: Tz = Tz::Offset(0);

    pub(super) fn parse(s: &str) -> Result<Tz> {
        if let Ok(tz) = jiff::tz::db().get(s) {
            // The database matches names case-insensitively; the server does not.
            if tz.iana_name() == Some(s) {
                return Ok(Tz::Named(tz));
            }
        }
        utc_offset(s).map(Tz::Offset).ok_or_else(|| {
            CommandError::new(40485, format!("unrecognized time zone identifier: \"{s}\""))
        })
    }

    /// Whether this is the server's "UTC zone" (no identifier, offset 0): only then may a date
    /// string carry its own zone.
    pub(super) fn is_utc_zone(&self) -> bool {
        matches!(self, Tz::Offset(0))
    }

    /// Seconds east of UTC at the instant `ms`.
    pub(super) fn offset_secs(&self, ms: i64) -> i64 {
        match self {
            Tz::Offset(secs) => *secs,
            Tz::Named(tz) => jiff::Timestamp::from_millisecond(ms)
                .map(|ts| i64::from(tz.to_offset(ts).seconds()))
                .unwrap_or(0),
        }
    }

    /// The wall-clock time at the instant `ms`, as milliseconds read as UTC.
    pub(super) fn local(&self, ms: i64) -> i64 {
        ms + self.offset_secs(ms) * 1000
    }

    /// The instant whose wall-clock time is `local` (milliseconds read as UTC). In a gap or an
    /// overlap of a named zone, the offset before the transition is used.
    pub(super) fn to_utc(&self, local: i64) -> i64 {
        match self {
            Tz::Offset(secs) => local - secs * 1000,
            Tz::Named(tz) => {
                let civil = jiff::Timestamp::from_millisecond(local)
                    .map(|ts| jiff::tz::TimeZone::UTC.to_datetime(ts));
                match civil.and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible()) {
                    Ok(ts) => ts.as_millisecond(),
                    Err(_) => local - self.offset_secs(local) * 1000,
                }
            }
        }
    }
}

/// The server's `parseUtcOffset`: `±HH`, `±HHMM` or `±HH:MM`, digits only.
fn utc_offset(s: &str) -> Option<i64> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |r: &str| -> Option<i64> {
        r.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| r.parse().ok())?
    };
    let rest = &s[1..];
    let (h, m) = match rest.len() {
        2 => (digits(rest)?, 0),
        4 => (digits(&rest[..2])?, digits(&rest[2..])?),
        5 if rest.as_bytes()[2] == b':' => (digits(&rest[..2])?, digits(&rest[3..])?),
        _ => return None,
    };
    Some(sign * (h * 3600 + m * 60))
}

/// Evaluates a `timezone` argument as the server's `makeTimeZone`: absent is UTC; `Ok(None)`
/// when it is null or missing (the operator then returns null); a non-string is 40517.
pub(super) fn timezone(tz: Option<&Bson>, scope: &Scope) -> Result<Option<Tz>> {
    let Some(tz) = tz else {
        return Ok(Some(Tz::UTC));
    };
    match eval(tz, scope)? {
        v if nullish(&v) => Ok(None),
        Some(Bson::String(s)) => Tz::parse(&s).map(Some),
        v => Err(CommandError::new(
            40517,
            format!("timezone must evaluate to a string, found {}", tn(&v)),
        )),
    }
}

pub(super) fn op_date_part(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let mut tz_expr = None;
    let date_expr = match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            let f = parse_object(name, arg, &["date", "timezone"], 40535)?;
            tz_expr = field(&f, "timezone");
            field(&f, "date").ok_or_else(|| {
                CommandError::new(
                    40539,
                    format!("missing 'date' argument to {name}, provided: {arg}"),
                )
            })?
        }
        other => {
            let a = exact_args(name, other, 1)?;
            a[0]
        }
    };
    let v = eval(date_expr, scope)?;
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let ms = date_millis(&v)?;
    let Some(tz) = timezone(tz_expr, scope)? else {
        return Ok(Some(Bson::Null));
    };
    let p = DateParts::from_millis(tz.local(ms));
    if name == "$isoWeekYear" {
        // The server's `TimeZone::isoYear` is a long long.
        return Ok(Some(Bson::Int64(p.iso_week().0)));
    }
    let n = match name {
        "$year" => p.year,
        "$month" => p.month,
        "$dayOfMonth" => p.day,
        "$hour" => p.hour,
        "$minute" => p.minute,
        "$second" => p.second,
        "$millisecond" => p.millis,
        "$dayOfWeek" => p.day_of_week,
        "$week" => p.week(),
        "$isoWeek" => p.iso_week().1,
        "$isoWeekYear" => p.iso_week().0,
        "$isoDayOfWeek" => p.iso_day_of_week(),
        _ => p.day_of_year,
    };
    Ok(Some(Bson::Int32(n as i32)))
}

pub(super) fn op_date_add(name: &str, arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        name,
        arg,
        &["startDate", "unit", "amount", "timezone"],
        5166401,
    )?;
    let Some(tz) = timezone(field(&f, "timezone"), scope)? else {
        return Ok(Some(Bson::Null));
    };
    let mut vals = Vec::new();
    for key in ["startDate", "unit", "amount"] {
        let e = field(&f, key).ok_or_else(|| {
            CommandError::new(5166402, format!("{name} requires '{key}' to be present"))
        })?;
        vals.push(eval(e, scope)?);
    }
    if vals.iter().any(nullish) {
        return Ok(Some(Bson::Null));
    }
    let start = match &vals[0] {
        Some(Bson::DateTime(d)) => d.timestamp_millis(),
        other => date_millis(other).map_err(|_| {
            CommandError::new(
                5166403,
                format!("{name} requires startDate to be convertible to a date"),
            )
        })?,
    };
    let Some(Bson::String(unit)) = &vals[1] else {
        return Err(CommandError::new(
            5166404,
            format!(
                "{name} requires 'unit' to be a string, but got {}",
                tn(&vals[1])
            ),
        ));
    };
    let Some(amount) = int_arg(&vals[2]) else {
        return Err(CommandError::new(
            5166405,
            format!("{name} expects integer amount of time units"),
        ));
    };
    let amount = if name == "$dateSubtract" {
        -amount
    } else {
        amount
    };
    let fixed = |ms: i64| start.checked_add(amount.checked_mul(ms)?);
    // Days and longer units move the wall clock of the time zone, not the instant.
    let local = tz.local(start);
    let calendar = |ms: i64| Some(tz.to_utc(local.checked_add(amount.checked_mul(ms)?)?));
    let result = match unit.as_str() {
        "millisecond" => fixed(1),
        "second" => fixed(1000),
        "minute" => fixed(60_000),
        "hour" => fixed(3_600_000),
        "day" => calendar(86_400_000),
        "week" => calendar(7 * 86_400_000),
        "month" | "quarter" | "year" => {
            let months = amount
                * match unit.as_str() {
                    "month" => 1,
                    "quarter" => 3,
                    _ => 12,
                };
            let p = DateParts::from_millis(local);
            let total = p.year * 12 + (p.month - 1) + months;
            let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
            // The day is clamped to the end of a shorter month.
            let last = days_from_civil(
                if m == 12 { y + 1 } else { y },
                if m == 12 { 1 } else { m + 1 },
                1,
            ) - days_from_civil(y, m, 1);
            let day = p.day.min(last);
            let rem = local.rem_euclid(86_400_000);
            Some(tz.to_utc(days_from_civil(y, m, day) * 86_400_000 + rem))
        }
        other => {
            return Err(CommandError::failed_to_parse(format!(
                "unknown time unit value: {other}"
            )));
        }
    };
    match result {
        Some(ms) => Ok(Some(Bson::DateTime(bson::DateTime::from_millis(ms)))),
        None => Err(CommandError::new(5166406, format!("{name} overflowed"))),
    }
}

pub(super) fn op_date_from_parts(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    const OP: &str = "$dateFromParts";
    let f = object_fields(
        OP,
        arg,
        &[
            "year",
            "month",
            "day",
            "isoWeekYear",
            "isoWeek",
            "isoDayOfWeek",
            "hour",
            "minute",
            "second",
            "millisecond",
            "timezone",
        ],
        40519,
        40518,
    )?;
    let has = |k: &str| field(&f, k).is_some();
    let iso = has("isoWeekYear");
    if !has("year") && !iso {
        return Err(CommandError::new(
            40516,
            "$dateFromParts requires either 'year' or 'isoWeekYear' to be present",
        ));
    }
    if has("year") && (iso || has("isoWeek") || has("isoDayOfWeek")) {
        return Err(CommandError::new(
            40489,
            "$dateFromParts does not allow mixing natural dates with ISO dates",
        ));
    }
    if iso && (has("month") || has("day")) {
        return Err(CommandError::new(
            40525,
            "$dateFromParts does not allow mixing ISO dates with natural dates",
        ));
    }
    let keys = if iso {
        ["isoWeekYear", "isoWeek", "isoDayOfWeek"]
    } else {
        ["year", "month", "day"]
    };
    let keys = keys
        .into_iter()
        .chain(["hour", "minute", "second", "millisecond"]);
    let mut parts = [1970i64, 1, 1, 0, 0, 0, 0];
    for (i, key) in keys.enumerate() {
        let Some(e) = field(&f, key) else {
            continue;
        };
        let v = eval(e, scope)?;
        if nullish(&v) {
            return Ok(Some(Bson::Null));
        }
        parts[i] = int_arg(&v).ok_or_else(|| {
            CommandError::new(
                40515,
                format!(
                    "'{key}' must evaluate to an integer, found {} with value {}",
                    tn(&v),
                    v.clone().unwrap_or(Bson::Null)
                ),
            )
        })?;
    }
    if !(1..=9999).contains(&parts[0]) {
        let (code, key) = if iso {
            (31095, "isoWeekYear")
        } else {
            (40523, "year")
        };
        return Err(CommandError::new(
            code,
            format!(
                "'{key}' must evaluate to an integer in the range 1 to 9999, found {}",
                parts[0]
            ),
        ));
    }
    let days = if iso {
        // ISO week 1 holds January 4th; weeks start on Monday (timelib_date_from_isodate).
        let jan4 = days_from_civil(parts[0], 1, 4);
        let monday = jan4 - (jan4 + 3).rem_euclid(7);
        monday + (parts[1] - 1) * 7 + (parts[2] - 1)
    } else {
        // Out-of-range parts carry over, as on the server (month 13 is January next year).
        let months = parts[0] * 12 + parts[1] - 1;
        days_from_civil(months.div_euclid(12), months.rem_euclid(12) + 1, 1) + parts[2] - 1
    };
    let ms =
        days * 86_400_000 + parts[3] * 3_600_000 + parts[4] * 60_000 + parts[5] * 1000 + parts[6];
    let Some(tz) = timezone(field(&f, "timezone"), scope)? else {
        return Ok(Some(Bson::Null));
    };
    Ok(Some(Bson::DateTime(bson::DateTime::from_millis(
        tz.to_utc(ms),
    ))))
}

pub(super) fn op_date_from_string(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        "$dateFromString",
        arg,
        &["dateString", "format", "timezone", "onError", "onNull"],
        40541,
    )?;
    let Some(tz) = timezone(field(&f, "timezone"), scope)? else {
        return Ok(Some(Bson::Null));
    };
    let e = field(&f, "dateString").ok_or_else(|| {
        CommandError::new(40542, "Missing 'dateString' parameter to $dateFromString")
    })?;
    let v = eval(e, scope)?;
    if nullish(&v) {
        return match field(&f, "onNull") {
            Some(e) => eval(e, scope),
            None => Ok(Some(Bson::Null)),
        };
    }
    let parsed = match &v {
        Some(Bson::String(s)) => match parse_date_zoned(s) {
            None => Err(CommandError::new(
                CONVERSION_FAILURE,
                format!("Error parsing date string '{s}'"),
            )),
            Some((ms, StringZone::None)) => Ok(bson::DateTime::from_millis(tz.to_utc(ms))),
            Some((ms, _)) if tz.is_utc_zone() => Ok(bson::DateTime::from_millis(ms)),
            Some((_, StringZone::Offset)) => Err(CommandError::new(
                CONVERSION_FAILURE,
                "you cannot pass in a date/time string with GMT offset together with a timezone argument",
            )),
            Some((_, _)) => Err(CommandError::new(
                CONVERSION_FAILURE,
                "you cannot pass in a date/time string with time zone information ('Z') together with a timezone argument",
            )),
        },
        other => Err(CommandError::new(
            CONVERSION_FAILURE,
            format!(
                "$dateFromString requires that 'dateString' be a string, found: {} with value {}",
                tn(other),
                other.clone().unwrap_or(Bson::Null)
            ),
        )),
    };
    match parsed {
        Ok(d) => Ok(Some(Bson::DateTime(d))),
        Err(e) => match field(&f, "onError") {
            Some(on_error) => eval(on_error, scope),
            None => Err(e),
        },
    }
}

pub(super) fn op_date_to_string(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let f = parse_object(
        "$dateToString",
        arg,
        &["date", "format", "timezone", "onNull"],
        18534,
    )?;
    let date = field(&f, "date")
        .ok_or_else(|| CommandError::new(18628, "Missing 'date' parameter to $dateToString"))?;
    let format = match field(&f, "format") {
        None => "%Y-%m-%dT%H:%M:%S.%LZ".to_string(),
        Some(e) => match eval(e, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::String(s)) => s,
            v => {
                return Err(CommandError::new(
                    18533,
                    format!(
                        "$dateToString requires that 'format' be a string, found: {} with value {}",
                        tn(&v),
                        v.clone().unwrap_or(Bson::Null)
                    ),
                ));
            }
        },
    };
    let v = eval(date, scope)?;
    // As the server: the timezone may fail even for a null date, whose onNull comes before a
    // null timezone.
    let tz = timezone(field(&f, "timezone"), scope)?;
    if nullish(&v) {
        return match field(&f, "onNull") {
            Some(e) => eval(e, scope),
            None => Ok(Some(Bson::Null)),
        };
    }
    let Some(tz) = tz else {
        return Ok(Some(Bson::Null));
    };
    let ms = date_millis(&v)?;
    let offset_minutes = tz.offset_secs(ms).div_euclid(60);
    let p = DateParts::from_millis(tz.local(ms));
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            return Err(CommandError::new(
                18535,
                "Unmatched '%' at end of format string",
            ));
        };
        match spec {
            'Y' => out.push_str(&format!("{:04}", p.year)),
            'm' => out.push_str(&format!("{:02}", p.month)),
            'd' => out.push_str(&format!("{:02}", p.day)),
            'H' => out.push_str(&format!("{:02}", p.hour)),
            'M' => out.push_str(&format!("{:02}", p.minute)),
            'S' => out.push_str(&format!("{:02}", p.second)),
            'L' => out.push_str(&format!("{:03}", p.millis)),
            'j' => out.push_str(&format!("{:03}", p.day_of_year)),
            'w' => out.push_str(&p.day_of_week.to_string()),
            'u' => out.push_str(&p.iso_day_of_week().to_string()),
            'U' => out.push_str(&format!("{:02}", p.week())),
            'V' => out.push_str(&format!("{:02}", p.iso_week().1)),
            'G' => out.push_str(&format!("{:04}", p.iso_week().0)),
            'z' => out.push_str(&format!(
                "{}{:02}{:02}",
                if offset_minutes < 0 { '-' } else { '+' },
                offset_minutes.abs() / 60,
                offset_minutes.abs() % 60
            )),
            // The server streams the minutes as a plain integer.
            'Z' => out.push_str(&offset_minutes.to_string()),
            '%' => out.push('%'),
            other => {
                return Err(CommandError::new(
                    18536,
                    format!("Invalid format character '%{other}' in format string"),
                ));
            }
        }
    }
    Ok(Some(Bson::String(out)))
}

/// `$dateToParts`: the calendar (or, with `iso8601`, ISO week) parts of a date in a time zone.
/// The server evaluates the timezone, then `iso8601`, then the date; any null gives null.
pub(super) fn op_date_to_parts(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    let Bson::Document(d) = arg else {
        return Err(CommandError::new(
            40524,
            "$dateToParts only supports an object as its argument",
        ));
    };
    let mut f = Vec::new();
    for (k, v) in d {
        if !["date", "timezone", "iso8601"].contains(&k.as_str()) {
            return Err(CommandError::new(
                40520,
                format!("Unrecognized argument to $dateToParts: {k}"),
            ));
        }
        f.push((k.as_str(), v));
    }
    let date = field(&f, "date")
        .ok_or_else(|| CommandError::new(40522, "Missing 'date' parameter to $dateToParts"))?;
    let v = eval(date, scope)?;
    let Some(tz) = timezone(field(&f, "timezone"), scope)? else {
        return Ok(Some(Bson::Null));
    };
    let iso = match field(&f, "iso8601") {
        None => false,
        Some(e) => match eval(e, scope)? {
            v if nullish(&v) => return Ok(Some(Bson::Null)),
            Some(Bson::Boolean(b)) => b,
            v => {
                return Err(CommandError::new(
                    40521,
                    format!("iso8601 must evaluate to a bool, found {}", tn(&v)),
                ));
            }
        },
    };
    if nullish(&v) {
        return Ok(Some(Bson::Null));
    }
    let p = DateParts::from_millis(tz.local(date_millis(&v)?));
    let n = |x: i64| Bson::Int32(x as i32);
    let mut out = Document::new();
    if iso {
        let (year, week) = p.iso_week();
        out.insert("isoWeekYear", n(year));
        out.insert("isoWeek", n(week));
        out.insert("isoDayOfWeek", n(p.iso_day_of_week()));
    } else {
        out.insert("year", n(p.year));
        out.insert("month", n(p.month));
        out.insert("day", n(p.day));
    }
    out.insert("hour", n(p.hour));
    out.insert("minute", n(p.minute));
    out.insert("second", n(p.second));
    out.insert("millisecond", n(p.millis));
    Ok(Some(Bson::Document(out)))
}

const DAY_MS: i64 = 86_400_000;

/// The server's `TimeUnit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl Unit {
    /// Milliseconds in one unit of a fixed length (hour and shorter).
    fn fixed_ms(self) -> Option<i64> {
        match self {
            Unit::Hour => Some(3_600_000),
            Unit::Minute => Some(60_000),
            Unit::Second => Some(1000),
            Unit::Millisecond => Some(1),
            _ => None,
        }
    }
}

/// The server's `parseTimeUnit(value, expressionName)`.
pub(super) fn parse_unit(v: &Option<Bson>, op: &str) -> Result<Unit> {
    let Some(Bson::String(s)) = v else {
        return Err(CommandError::new(
            5439013,
            format!("{op} requires 'unit' to be a string, but got {}", tn(v)),
        ));
    };
    Ok(match s.as_str() {
        "year" => Unit::Year,
        "quarter" => Unit::Quarter,
        "month" => Unit::Month,
        "week" => Unit::Week,
        "day" => Unit::Day,
        "hour" => Unit::Hour,
        "minute" => Unit::Minute,
        "second" => Unit::Second,
        "millisecond" => Unit::Millisecond,
        other => {
            return Err(CommandError::failed_to_parse(format!(
                "{op} parameter 'unit' value parsing failed :: caused by :: unknown time unit value: {other}"
            )));
        }
    })
}

/// The server's `parseDayOfWeek`: a full or three-letter English name, any case; Monday is 1.
fn parse_day_of_week(v: &Option<Bson>, op: &str, param: &str) -> Result<i64> {
    let Some(Bson::String(s)) = v else {
        return Err(CommandError::new(
            5439015,
            format!("{op} requires '{param}' to be a string, but got {}", tn(v)),
        ));
    };
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = s.to_lowercase();
    days.iter()
        .position(|d| *d == lower || d[..3] == lower)
        .map(|i| i as i64 + 1)
        .ok_or_else(|| {
            CommandError::new(
                5439016,
                format!(
                    "{op} parameter '{param}' value cannot be recognized as a day of a week: {s}"
                ),
            )
        })
}

/// The server's `convertDate` for `$dateDiff`/`$dateTrunc` (5166307).
fn convert_date(v: &Option<Bson>, op: &str, param: &str) -> Result<i64> {
    date_millis(v).map_err(|_| {
        CommandError::new(
            5166307,
            format!("{op} requires '{param}' to be a date, but got {}", tn(v)),
        )
    })
}

/// Prefixes a timezone error as the server's `addContextToAssertionException` does.
fn timezone_in_context(tz: Option<&Bson>, scope: &Scope, op: &str) -> Result<Option<Tz>> {
    timezone(tz, scope).map_err(|mut e| {
        e.message = format!(
            "{op} parameter 'timezone' value parsing failed :: caused by :: {}",
            e.message
        );
        e
    })
}

/// An operator's object argument with its allowed fields (unknown ones: `unknown_code`).
fn object_fields<'a>(
    op: &str,
    arg: &'a Bson,
    allowed: &[&str],
    object_code: i32,
    unknown_code: i32,
) -> Result<Vec<(&'a str, &'a Bson)>> {
    let Bson::Document(d) = arg else {
        return Err(CommandError::new(
            object_code,
            format!("{op} only supports an object as its argument"),
        ));
    };
    let mut out = Vec::new();
    for (k, v) in d {
        if !allowed.contains(&k.as_str()) {
            return Err(CommandError::new(
                unknown_code,
                format!("Unrecognized argument to {op}: {k}"),
            ));
        }
        out.push((k.as_str(), v));
    }
    Ok(out)
}

/// A date's wall clock in a zone, with the zone's offset at that instant (timelib's `z`).
struct LocalTime {
    p: DateParts,
    offset_secs: i64,
}

impl LocalTime {
    fn at(ms: i64, tz: &Tz) -> LocalTime {
        LocalTime {
            p: DateParts::from_millis(tz.local(ms)),
            offset_secs: tz.offset_secs(ms),
        }
    }
}

/// Days from the calendar date `(y, m, d)` to the one of `end`.
fn days_between(y: i64, m: i64, d: i64, end: &DateParts) -> i64 {
    days_from_civil(end.year, end.month, end.day) - days_from_civil(y, m, d)
}

/// 0 for the first day of a week starting on `start_of_week` (Monday is 1), 6 for the last.
fn day_in_week(iso_day_of_week: i64, start_of_week: i64) -> i64 {
    (iso_day_of_week - start_of_week + 7) % 7
}

/// The server's calendar differences (`date_time_support.cpp`): units of a day and longer
/// count boundaries crossed between the two wall-clock dates; week division truncates.
fn calendar_diff(start: (i64, i64, i64, i64), end: &DateParts, unit: Unit, sow: i64) -> i64 {
    let (y, m, d, start_iso_dow) = start;
    let years = end.year - y;
    match unit {
        Unit::Year => years,
        Unit::Quarter => (end.month - 1) / 3 - (m - 1) / 3 + years * 4,
        Unit::Month => end.month - m + years * 12,
        Unit::Week => {
            (days_between(y, m, d, end) + day_in_week(start_iso_dow, sow)
                - day_in_week(end.iso_day_of_week(), sow))
                / 7
        }
        _ => days_between(y, m, d, end),
    }
}

/// The server's `dateAdd`: units of a day and longer move the wall clock of the zone (a month
/// clamps the day to the month's last), shorter ones the instant.
fn add_units(ms: i64, unit: Unit, amount: i64, tz: &Tz) -> Option<i64> {
    if let Some(unit_ms) = unit.fixed_ms() {
        return ms.checked_add(amount.checked_mul(unit_ms)?);
    }
    let local = tz.local(ms);
    let new_local = match unit {
        Unit::Day | Unit::Week => {
            let days = if unit == Unit::Week {
                amount.checked_mul(7)?
            } else {
                amount
            };
            local.checked_add(days.checked_mul(DAY_MS)?)?
        }
        _ => {
            let per = match unit {
                Unit::Year => 12,
                Unit::Quarter => 3,
                _ => 1,
            };
            let p = DateParts::from_millis(local);
            let total = (p.year * 12 + p.month - 1).checked_add(amount.checked_mul(per)?)?;
            let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
            let last = days_from_civil(y + m / 12, m % 12 + 1, 1) - days_from_civil(y, m, 1);
            days_from_civil(y, m, p.day.min(last))
                .checked_mul(DAY_MS)?
                .checked_add(local.rem_euclid(DAY_MS))?
        }
    };
    Some(tz.to_utc(new_local))
}

/// `$dateDiff`: whole units between two dates, in a time zone.
pub(super) fn op_date_diff(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    const OP: &str = "$dateDiff";
    let f = object_fields(
        OP,
        arg,
        &["startDate", "endDate", "unit", "timezone", "startOfWeek"],
        5166301,
        5166302,
    )?;
    let start_e = field(&f, "startDate")
        .ok_or_else(|| CommandError::new(5166303, "Missing 'startDate' parameter to $dateDiff"))?;
    let end_e = field(&f, "endDate")
        .ok_or_else(|| CommandError::new(5166304, "Missing 'endDate' parameter to $dateDiff"))?;
    let unit_e = field(&f, "unit")
        .ok_or_else(|| CommandError::new(5166305, "Missing 'unit' parameter to $dateDiff"))?;
    // The server's order: start, end, unit, startOfWeek, timezone; a null one gives null.
    let start = eval(start_e, scope)?;
    if nullish(&start) {
        return Ok(Some(Bson::Null));
    }
    let end = eval(end_e, scope)?;
    if nullish(&end) {
        return Ok(Some(Bson::Null));
    }
    let unit_v = eval(unit_e, scope)?;
    if nullish(&unit_v) {
        return Ok(Some(Bson::Null));
    }
    let unit = parse_unit(&unit_v, OP)?;
    let mut sow = 7;
    if unit == Unit::Week
        && let Some(e) = field(&f, "startOfWeek")
    {
        let v = eval(e, scope)?;
        if nullish(&v) {
            return Ok(Some(Bson::Null));
        }
        sow = parse_day_of_week(&v, OP, "startOfWeek")?;
    }
    let Some(tz) = timezone_in_context(field(&f, "timezone"), scope, OP)? else {
        return Ok(Some(Bson::Null));
    };
    let start = convert_date(&start, OP, "startDate")?;
    let end = convert_date(&end, OP, "endDate")?;
    if unit == Unit::Millisecond {
        return end
            .checked_sub(start)
            .map(|d| Some(Bson::Int64(d)))
            .ok_or_else(|| CommandError::new(5166308, "dateDiff overflowed"));
    }
    let (s, e) = (LocalTime::at(start, &tz), LocalTime::at(end, &tz));
    let days = || days_between(s.p.year, s.p.month, s.p.day, &e.p);
    let offset_change = s.offset_secs - e.offset_secs;
    let hours = || e.p.hour - s.p.hour + days() * 24;
    let minutes = || e.p.minute - s.p.minute + hours() * 60;
    let diff = match unit {
        Unit::Hour => hours() + offset_change / 3600,
        Unit::Minute => minutes() + offset_change / 60,
        Unit::Second => e.p.second - s.p.second + minutes() * 60 + offset_change,
        _ => calendar_diff(
            (s.p.year, s.p.month, s.p.day, s.p.iso_day_of_week()),
            &e.p,
            unit,
            sow,
        ),
    };
    Ok(Some(Bson::Int64(diff)))
}

/// `$dateTrunc`: the start of the bin of `binSize` units holding a date, bins counted from
/// 2000-01-01 in the time zone (the first `startOfWeek` on or after it for weeks).
pub(super) fn op_date_trunc(arg: &Bson, scope: &Scope) -> Result<Option<Bson>> {
    const OP: &str = "$dateTrunc";
    let f = object_fields(
        OP,
        arg,
        &["date", "unit", "binSize", "timezone", "startOfWeek"],
        5439007,
        5439008,
    )?;
    let date_e = field(&f, "date")
        .ok_or_else(|| CommandError::new(5439009, "Missing 'date' parameter to $dateTrunc"))?;
    let unit_e = field(&f, "unit")
        .ok_or_else(|| CommandError::new(5439010, "Missing 'unit' parameter to $dateTrunc"))?;
    // The server's order: date, binSize, unit, startOfWeek, timezone.
    let date = eval(date_e, scope)?;
    if nullish(&date) {
        return Ok(Some(Bson::Null));
    }
    let mut bin: i64 = 1;
    if let Some(e) = field(&f, "binSize") {
        let v = eval(e, scope)?;
        if nullish(&v) {
            return Ok(Some(Bson::Null));
        }
        bin = integral_64(&v).ok_or_else(|| {
            CommandError::new(
                5439017,
                format!(
                    "$dateTrunc requires 'binSize' to be a 64-bit integer, but got value '{}' of type {}",
                    v.clone().unwrap_or(Bson::Null),
                    tn(&v)
                ),
            )
        })?;
        if bin <= 0 {
            return Err(CommandError::new(
                5439018,
                format!("$dateTrunc requires 'binSize' to be greater than 0, but got value {bin}"),
            ));
        }
    }
    let unit_v = eval(unit_e, scope)?;
    if nullish(&unit_v) {
        return Ok(Some(Bson::Null));
    }
    let unit = parse_unit(&unit_v, OP)?;
    let mut sow = 7;
    if unit == Unit::Week
        && let Some(e) = field(&f, "startOfWeek")
    {
        let v = eval(e, scope)?;
        if nullish(&v) {
            return Ok(Some(Bson::Null));
        }
        sow = parse_day_of_week(&v, OP, "startOfWeek")?;
    }
    let Some(tz) = timezone_in_context(field(&f, "timezone"), scope, OP)? else {
        return Ok(Some(Bson::Null));
    };
    let ms = convert_date(&date, OP, "date")?;
    let overflow = |code: i32| CommandError::new(code, "dateTrunc overflowed");

    // The reference point: 2000-01-01T00:00 in the zone, moved on to the week's first day.
    const Y2K_MS: i64 = 946_684_800_000;
    let mut ref_ms = Y2K_MS - tz.offset_secs(Y2K_MS) * 1000;
    let mut ref_day = 1;
    if unit == Unit::Week {
        // 2000-01-01 was a Saturday (6).
        let adjust = (7 - day_in_week(6, sow)) % 7;
        ref_ms += adjust * DAY_MS;
        ref_day += adjust;
    }
    let out = if let Some(unit_ms) = unit.fixed_ms() {
        let bin_ms = bin.checked_mul(unit_ms).ok_or_else(|| overflow(5439002))?;
        let shifted = ms.checked_sub(ref_ms).ok_or_else(|| overflow(5439000))?;
        ms.checked_sub(shifted.rem_euclid(bin_ms))
            .ok_or_else(|| overflow(5439001))?
    } else {
        if bin > 100_000_000_000 {
            return Err(CommandError::new(
                5439006,
                "dateTrunc unsupported binSize value",
            ));
        }
        let local = LocalTime::at(ms, &tz);
        // 2000-01-01 is ISO day 6; the week's reference day is a start of week.
        let ref_iso_dow = if unit == Unit::Week { sow } else { 6 };
        let distance = calendar_diff((2000, 1, ref_day, ref_iso_dow), &local.p, unit, sow);
        let lower = distance
            .checked_sub(distance.rem_euclid(bin))
            .ok_or_else(|| overflow(5439004))?;
        add_units(ref_ms, unit, lower, &tz).ok_or_else(|| overflow(5166406))?
    };
    Ok(Some(Bson::DateTime(bson::DateTime::from_millis(out))))
}

/// The server's `Value::integral64Bit`: an int, a long, or a double/decimal holding an integer
/// that fits a long.
fn integral_64(v: &Option<Bson>) -> Option<i64> {
    match v.as_ref()? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(l) => Some(*l),
        Bson::Double(d)
            if d.fract() == 0.0
                && *d >= -9.223_372_036_854_776e18
                && *d < 9.223_372_036_854_776e18 =>
        {
            Some(*d as i64)
        }
        Bson::Decimal128(d) => {
            let x = dec_to_f64(d);
            (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i64)
        }
        _ => None,
    }
}

/// `ms` plus `amount` of a named unit in UTC (calendar months and years), as `$dateAdd`
/// computes it; for `$setWindowFields` time ranges. `None` for an unknown unit or overflow.
pub(crate) fn add_named_units(ms: i64, unit: &str, amount: i64) -> Option<i64> {
    let unit = parse_unit(&Some(Bson::String(unit.to_string())), "$setWindowFields").ok()?;
    add_units(ms, unit, amount, &Tz::UTC)
}

-- Business hours in an IANA time zone (with daylight saving) instead of a fixed offset.
-- Existing agents get the zone that keeps their meaning exactly: UTC, Etc/GMT-1 for
-- UTC+1 (POSIX signs: west is positive), and for the fractional offsets the old form
-- offered, the zone that has kept that offset all year. The rest (offsets only zones with
-- daylight saving use) stay empty: they keep their fixed `utc_offset_minutes` until the
-- owner picks a zone.
ALTER TABLE agents ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
UPDATE agents SET time_zone = CASE
    WHEN utc_offset_minutes = 0 THEN 'UTC'
    WHEN utc_offset_minutes % 60 = 0 AND utc_offset_minutes BETWEEN -720 AND 840 THEN
        'Etc/GMT' || (CASE WHEN utc_offset_minutes > 0 THEN '-' ELSE '+' END)
            || CAST(ABS(utc_offset_minutes) / 60 AS TEXT)
    WHEN utc_offset_minutes = -570 THEN 'Pacific/Marquesas'
    WHEN utc_offset_minutes = 210 THEN 'Asia/Tehran'
    WHEN utc_offset_minutes = 270 THEN 'Asia/Kabul'
    WHEN utc_offset_minutes = 330 THEN 'Asia/Kolkata'
    WHEN utc_offset_minutes = 345 THEN 'Asia/Kathmandu'
    WHEN utc_offset_minutes = 390 THEN 'Asia/Yangon'
    WHEN utc_offset_minutes = 525 THEN 'Australia/Eucla'
    WHEN utc_offset_minutes = 570 THEN 'Australia/Darwin'
    ELSE ''
END;

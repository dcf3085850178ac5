-- Kendall's tau-b between the architecture rankings of every pair of MR settings,
-- each ranked by its primary metric (mIoU for segmentation, top1 otherwise).
WITH s AS (
    SELECT setting, code, value FROM results WHERE metric IN ('mIoU', 'top1')
),
pairs AS (
    SELECT a.setting AS s1, b.setting AS s2, code, a.value AS x, b.value AS y
    FROM s AS a JOIN s AS b USING (code)
    WHERE a.setting < b.setting
),
tau AS (
    SELECT
        p.s1,
        p.s2,
        sum(sign(p.x - q.x) * sign(p.y - q.y))
        / sqrt(sum(abs(sign(p.x - q.x))) * sum(abs(sign(p.y - q.y)))) AS tau_b
    FROM pairs AS p JOIN pairs AS q ON p.s1 = q.s1 AND p.s2 = q.s2 AND p.code < q.code
    GROUP BY p.s1, p.s2
)
-- Ordered by the unrounded value, then by name: rounding ties would otherwise come out
-- in whatever order the parallel aggregation finishes.
SELECT s1, s2, round(tau_b, 3) AS kendall_tau_b
FROM tau
ORDER BY tau_b DESC, s1, s2

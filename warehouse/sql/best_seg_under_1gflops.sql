-- The 10 best Cityscapes segmentation architectures under 1 GFLOPs (GMac of the
-- classification-head network on a 128x128 input: the benchmark's cost in every setting).
SELECT code, "mIoU", round(flops, 3) AS gflops, round(params, 2) AS mparams
FROM results_seg
WHERE flops < 1
ORDER BY "mIoU" DESC
LIMIT 10

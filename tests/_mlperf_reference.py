"""Minimal MLPerf reference post-processing, vendored for tests (a test oracle, not imported by the package).

Source: mlcommons/inference, vision/classification_and_detection/python/models/ssd_r34.py
(``Encoder.decode_single``, ``calc_iou_tensor``) and models/utils.py (``box_area``, ``box_iou``, ``nms``),
Copyright MLCommons, Apache License 2.0 (https://github.com/mlcommons/inference/blob/master/LICENSE.md).
Copied verbatim except: ``decode_single`` is a function (``self`` dropped), the ``@torch.jit.script``
decorator is dropped (TorchScript is deprecated; eager torch runs the same float32 operations), and
comments were trimmed.
"""

import torch


# models/ssd_r34.py
def decode_single(bboxes_in, scores_in, criteria, max_output, max_num=200):
    bboxes_out = []
    scores_out = []
    labels_out = []

    for i, score in enumerate(scores_in.split(1, 1)):
        # skip background
        if i == 0:
            continue

        score = score.squeeze(1)
        mask = score > 0.05

        bboxes, score = bboxes_in[mask, :], score[mask]
        if score.size(0) == 0:
            continue

        score_sorted, score_idx_sorted = score.sort(dim=0)

        # select max_output indices
        score_idx_sorted = score_idx_sorted[-max_num:]
        candidates = []

        while score_idx_sorted.numel() > 0:
            idx = score_idx_sorted[-1].item()
            bboxes_sorted = bboxes[score_idx_sorted, :]
            bboxes_idx = bboxes[idx, :].unsqueeze(dim=0)
            iou_sorted = calc_iou_tensor(bboxes_sorted, bboxes_idx).squeeze()
            # we only need iou < criteria
            score_idx_sorted = score_idx_sorted[iou_sorted < criteria]
            candidates.append(idx)

        bboxes_out.append(bboxes[candidates, :])
        scores_out.append(score[candidates])
        labels_out.extend([i] * len(candidates))

    bboxes_out, labels_out, scores_out = (
        torch.cat(bboxes_out, dim=0),
        torch.tensor(labels_out, dtype=torch.long),
        torch.cat(scores_out, dim=0),
    )

    _, max_ids = scores_out.sort(dim=0)
    max_ids = max_ids[-max_output:]
    return bboxes_out[max_ids, :], labels_out[max_ids], scores_out[max_ids]


# models/ssd_r34.py
def calc_iou_tensor(box1, box2):
    N = box1.size(0)
    M = box2.size(0)

    be1 = box1.unsqueeze(1).expand(-1, M, -1)
    be2 = box2.unsqueeze(0).expand(N, -1, -1)

    # Left Top & Right Bottom
    lt = torch.max(be1[:, :, :2], be2[:, :, :2])
    rb = torch.min(be1[:, :, 2:], be2[:, :, 2:])
    delta = rb - lt
    delta.clone().masked_fill_(delta < 0, 0)
    intersect = delta[:, :, 0] * delta[:, :, 1]
    delta1 = be1[:, :, 2:] - be1[:, :, :2]
    area1 = delta1[:, :, 0] * delta1[:, :, 1]
    delta2 = be2[:, :, 2:] - be2[:, :, :2]
    area2 = delta2[:, :, 0] * delta2[:, :, 1]

    iou = intersect / (area1 + area2 - intersect)
    return iou


# models/utils.py
def box_area(left_top, right_bottom):
    hw = torch.clamp(right_bottom - left_top, min=0.0)
    return hw[..., 0] * hw[..., 1]


# models/utils.py
def box_iou(boxes0, boxes1, eps=1e-5):
    overlap_left_top = torch.max(boxes0[..., :2], boxes1[..., :2])
    overlap_right_bottom = torch.min(boxes0[..., 2:], boxes1[..., 2:])

    overlap_area = box_area(overlap_left_top, overlap_right_bottom)
    area0 = box_area(boxes0[..., :2], boxes0[..., 2:])
    area1 = box_area(boxes1[..., :2], boxes1[..., 2:])
    return overlap_area / (area0 + area1 - overlap_area + eps)


# models/utils.py
def nms(box_scores, iou_threshold):
    scores = box_scores[:, -1]
    boxes = box_scores[:, :-1]
    picked = []
    _, indexes = scores.sort(descending=True)
    while len(indexes) > 0:
        current = indexes[0]
        picked.append(current.item())
        if len(indexes) == 1:
            break
        current_box = boxes[current, :]
        indexes = indexes[1:]
        rest_boxes = boxes[indexes, :]
        iou = box_iou(rest_boxes, current_box.unsqueeze(0))
        indexes = indexes[iou <= iou_threshold]

    return box_scores[picked, :]

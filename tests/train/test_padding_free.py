"""Padding-free batches are exact: packed rows do not see each other, and the loss equals padded training."""

from __future__ import annotations

import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from orgtune.data.formats import load_rows
from orgtune.data.tokenize import encode_rows


def test_packed_logits_equal_separate_rows_on_the_real_model(demo_data, tokenizer):
    from orgtune.models.loading import load_model

    model, tok, _ = load_model("smollm2-135m")
    rows = encode_rows(tok, load_rows(demo_data).rows[:3], max_len=512).rows
    collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)
    batch = collate([{"input_ids": r.input_ids, "labels": r.labels} for r in rows])
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    with torch.inference_mode():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start = 0
        for r in rows:
            alone = model(input_ids=torch.tensor([r.input_ids]), use_cache=False).logits[0]
            part = packed[start : start + len(r.input_ids)]
            assert (part - alone).abs().max() < 1e-3
            start += len(r.input_ids)


def test_padding_free_loss_equals_padded_loss(demo_data, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.use_cache = False
    rows = encode_rows(tok, load_rows(demo_data).rows[:4], max_len=512).rows
    feats = [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]
    assert len({len(r.input_ids) for r in rows}) > 1  # real padding in the padded batch
    padded = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id)(feats)
    free = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)(feats)
    with torch.inference_mode():
        a = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"], labels=padded["labels"]).loss
        b = model(input_ids=free["input_ids"], position_ids=free["position_ids"], labels=free["labels"]).loss
    assert abs(a.item() - b.item()) < 1e-5


def test_selective_lm_head_loss_equals_trl_loss(demo_data, tiny_model_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from orgtune.train.trainer import OrgtuneSFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = encode_rows(tok, load_rows(demo_data).rows[:8], max_len=512).rows
    ds = Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "labels": [r.labels for r in rows]})
    losses = {}
    for name, cls, padding_free in (("trl", SFTTrainer, False), ("orgtune", OrgtuneSFTTrainer, True)):
        args = SFTConfig(
            output_dir=str(tmp_path / name),
            per_device_train_batch_size=4,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            report_to="none",
            max_length=None,
            padding_free=padding_free,
        )
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        lora = LoraConfig(
            r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        )
        trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
        batch = next(iter(trainer.get_train_dataloader()))
        n = (batch["labels"][:, 1:] != -100).sum()
        with torch.no_grad():
            losses[name] = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n).item()
    assert abs(losses["trl"] - losses["orgtune"]) < 1e-5, losses

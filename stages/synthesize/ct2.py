"""The CTranslate2 generation backend: the merged model converted once, sampled by a CPU inference engine.

`transformers` `generate` stays the reference path (`generation.backend: transformers`).
With `backend: ctranslate2` the LoRA is merged into a float32 copy of the weights, saved
with the base's tokenizer to a scratch folder, converted by CTranslate2's
`TransformersConverter` (weights quantized to `generation.dtype`: int8 or float32), and
loaded as a `ctranslate2.Generator`; the scratch folder is removed once it is loaded.

Decoding uses the same settings as the reference path (temperature, top-k, top-p,
repetition penalty, end of sequence, the new-token budget), seeded per batch from
(seed, batch index, attempt) (a Generator per batch, see `_seeded`), so a batch's records
do not depend on the order batches run in. They are not the reference path's records
(another sampler, int8 arithmetic), and with int8 they can depend on the thread count.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stages.errors import PipelineInputError

COMPUTE_TYPES = ("int8", "float32")


def _plain_copy(model):
    """The same weights in a model `save_pretrained` accepts (a GGUF-loaded one is flagged quantized, so it refuses)."""
    if getattr(model, "hf_quantizer", None) is None:
        return model
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    return plain.eval()


class CT2Generator:
    """A CTranslate2 Generator built from a (PEFT or plain) causal LM; `sample` as engine.sample does."""

    def __init__(self, model, tokenizer, *, compute_type: str, threads: int):
        import ctranslate2
        from ctranslate2.converters import TransformersConverter

        if compute_type not in COMPUTE_TYPES:
            raise PipelineInputError(f"generation.dtype {compute_type!r} is not a CTranslate2 compute type here; "
                                     f"use one of {list(COMPUTE_TYPES)} with generation.backend ctranslate2.")
        merged = copy.deepcopy(model)
        if hasattr(merged, "merge_and_unload"):
            merged = merged.merge_and_unload()
        merged = _plain_copy(merged.eval())
        with tempfile.TemporaryDirectory(prefix="synthguard-ct2-") as tmp:
            hf_dir, ct2_dir = Path(tmp) / "hf", Path(tmp) / "ct2"
            merged.save_pretrained(str(hf_dir))
            saved = copy.deepcopy(tokenizer)
            if saved.bos_token is None:  # CTranslate2's config needs one; prompts carry no special tokens anyway
                saved.bos_token = saved.eos_token
            saved.save_pretrained(str(hf_dir))
            try:
                TransformersConverter(str(hf_dir)).convert(str(ct2_dir), quantization=compute_type, force=True)
            except (ValueError, NotImplementedError) as exc:
                raise PipelineInputError(
                    f"CTranslate2 cannot convert this base model ({exc}); set synthesize.generation.backend to "
                    "transformers (the reference path)."
                ) from exc
            self.files = {f.name: f.read_bytes() for f in ct2_dir.iterdir() if f.is_file()}
        self.compute_type, self.threads = compute_type, threads

    def _seeded(self, seed: int):
        """A Generator whose sampler starts from `seed`.

        CTranslate2 seeds each worker thread's random generator once, from the global seed
        at the thread's start, so a batch gets its own Generator (from the converted files
        held in memory: a fraction of a second against the batch's seconds of decoding).
        """
        import ctranslate2

        ctranslate2.set_random_seed(seed)
        return ctranslate2.Generator("ct2", device="cpu", compute_type=self.compute_type,
                                     intra_threads=self.threads, files=self.files)

    def sample(self, tokenizer, prompts: Sequence[str], gen, *, seed: int) -> tuple[list[str], list[bool], int]:
        """One sampled continuation per prompt: (texts, whether each reached end-of-sequence, new tokens)."""
        starts = [tokenizer.convert_ids_to_tokens(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        results = self._seeded(seed).generate_batch(
            starts,
            max_length=gen.max_new_tokens,
            sampling_topk=gen.top_k,  # 0: the whole distribution, as top_k 0 (off) on the reference path
            sampling_topp=gen.top_p,
            sampling_temperature=gen.temperature,
            repetition_penalty=gen.repetition_penalty,
            include_prompt_in_result=False,
            end_token=tokenizer.eos_token,
            return_end_token=True,
        )
        texts, finished, n_tokens = [], [], 0
        for result in results:
            ids = list(result.sequences_ids[0])
            done = bool(ids) and ids[-1] == tokenizer.eos_token_id
            n_tokens += len(ids)
            texts.append(tokenizer.decode(ids[:-1] if done else ids, skip_special_tokens=True))
            finished.append(done)
        return texts, finished, n_tokens

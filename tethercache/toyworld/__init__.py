"""Embedded toy world: procedural panning videos, their prompt grammar and a weight-free text encoder."""
from .prompts import (PALETTES, SHAPES, SPEEDS, SPRITE_COLOURS, TEXTURES, PromptError, SpriteSpec,
                      WorldSpec, parse_prompt, sample_prompt, sample_spec)
from .text import GrammarTextEncoder
from .world import (DEFAULT_CONFIG, REVISIT_MIN_GAP, SPLIT_SEEDS, TOY_FPS, ClipBatch, ToyWorld,
                    WorldConfig, prompt_for_seed, render, split_pairs, training_batches)

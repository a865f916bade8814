from __future__ import annotations

from django import forms

from .blocks import BLOCK_LABELS, BLOCK_TYPES


class GenerateBlockForm(forms.Form):
    type = forms.ChoiceField(choices=[(t, BLOCK_LABELS[t]) for t in BLOCK_TYPES])
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 70}), required=False)
    model = forms.CharField(required=False, help_text="Empty: the site's default model.")

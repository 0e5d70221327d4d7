"""Instruction-guided video editing (Fairy, arXiv 2312.13834): anchor cross-frame attention over an
InstructPix2Pix-style editor, frames edited in parallel processes with a result identical to a sequential run."""

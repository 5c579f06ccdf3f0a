/// (being written)
module Research.Core.Checkpoint

/// (being written)
module Research.Core.Diff

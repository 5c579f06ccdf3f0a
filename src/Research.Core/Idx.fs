/// (being written)
module Research.Core.Idx

/// (being written)
module Research.Core.Validate

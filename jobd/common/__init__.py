"""Small helpers every part of jobd may use; they import nothing of jobd but `errors`."""

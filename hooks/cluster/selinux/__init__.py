"""SelinuxProfile and RawSelinuxProfile: validation, CIL translation and the two controllers."""

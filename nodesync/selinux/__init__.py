"""The SELinux agent: policy ConfigMaps to CIL policies, installed by selinuxd or semodule."""
